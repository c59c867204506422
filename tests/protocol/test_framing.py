"""The length-prefix splitter."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import FrameTooLarge, RemoteProtocolError
from protocol._framing import DEFAULT_MAX_FRAME, FrameSplitter
from tests.protocol.protocol_helpers import chunkings, frame


def split(chunks: list[bytes], max_frame: int = DEFAULT_MAX_FRAME) -> tuple[list[bytes], int]:
    splitter = FrameSplitter(max_frame)
    frames = []
    for chunk in chunks:
        splitter.feed(chunk)
        while (f := splitter.next_frame()) is not None:
            frames.append(bytes(f))
    return frames, splitter.buffered


PAYLOADS = [b"", b"x", b"hello", bytes(range(256)) * 3]


@pytest.mark.parametrize("mode", ["whole", "bytewise", "halves"])
def test_frames_in_every_chunking(mode: str) -> None:
    data = b"".join(frame(p) for p in PAYLOADS)
    chunks = dict(chunkings(data))[mode]
    assert split(chunks) == (PAYLOADS, 0)


def test_trailing_partial_frame_stays_buffered() -> None:
    partial = frame(b"next")[:5]
    frames, buffered = split([frame(b"one") + partial])
    assert frames == [b"one"]
    assert buffered == 5


def test_whole_frames_are_zero_copy_views() -> None:
    chunk = frame(b"abc") + frame(b"de")
    splitter = FrameSplitter()
    splitter.feed(chunk)
    first = splitter.next_frame()
    assert isinstance(first, memoryview)
    assert first.obj is chunk  # a slice of the received bytes, not a copy


def test_default_limit_is_64_mib() -> None:
    assert DEFAULT_MAX_FRAME == 64 * 2**20


def test_frame_at_limit_passes_and_above_fails() -> None:
    assert split([frame(b"x" * 16)], max_frame=16) == ([b"x" * 16], 0)
    with pytest.raises(FrameTooLarge) as info:
        split([frame(b"x" * 17)], max_frame=16)
    assert (info.value.length, info.value.limit) == (17, 16)
    assert isinstance(info.value, RemoteProtocolError)


def test_too_large_is_detected_from_the_prefix_alone() -> None:
    splitter = FrameSplitter(max_frame=1024)
    splitter.feed(struct.pack("<i", 2**31 - 1))
    with pytest.raises(FrameTooLarge):
        splitter.next_frame()


def test_negative_length() -> None:
    with pytest.raises(RemoteProtocolError, match="negative"):
        split([struct.pack("<i", -1)])


def test_large_frame_in_small_chunks_is_joined_once() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    data = frame(payload)
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    assert split(chunks) == ([payload], 0)


@given(st.lists(st.binary(max_size=40), max_size=8), st.data())
def test_any_chunking_gives_the_same_frames(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert split(chunks) == (payloads, 0)
