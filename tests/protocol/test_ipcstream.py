"""The unix:// stream framing (protocol/ipcstream.py): 4-byte big-endian length + one message,
cut back into messages whatever the chunking, with oversized messages reported once and
skipped without being buffered."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.ipcstream import HEADER, MessageReader, Oversized, frame

MESSAGES = [b"one", b"", b"x" * 300, bytes(range(256)), b"\x00\x00\x00\x00", b"last"]
STREAM = b"".join(frame(m) for m in MESSAGES)


def read(chunks: list[bytes], max_message: int = 1 << 20) -> tuple[list, int]:
    reader = MessageReader(max_message)
    out: list = []
    for chunk in chunks:
        got = reader.feed(chunk)
        assert isinstance(got, list)
        out += got
    return out, reader.buffered


def test_frame_is_a_big_endian_length_then_the_message() -> None:
    assert frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert frame(b"") == b"\x00\x00\x00\x00"
    assert frame(b"y" * 0x01020304)[:4] == b"\x01\x02\x03\x04"
    assert HEADER.size == 4


def test_several_messages_in_one_chunk() -> None:
    out, buffered = read([STREAM])
    assert out == MESSAGES
    assert all(type(m) is bytes for m in out)
    assert buffered == 0


def test_single_whole_message_fast_path() -> None:
    reader = MessageReader()
    for message in [b"hello", b"", b"z" * 70000]:
        got = reader.feed(frame(message))
        assert got == [message]
        assert type(got[0]) is bytes
        assert reader.buffered == 0


def test_zero_length_message_alone_and_among_others() -> None:
    assert read([frame(b"")]) == ([b""], 0)
    assert read([frame(b"") * 3]) == ([b"", b"", b""], 0)
    assert read([b"\x00", b"\x00\x00", b"\x00"]) == ([b""], 0)


@pytest.mark.parametrize("cut", range(len(STREAM) + 1))
def test_split_at_every_byte_boundary(cut: int) -> None:
    out, buffered = read([STREAM[:cut], STREAM[cut:]])
    assert out == MESSAGES
    assert buffered == 0


def test_split_at_every_boundary_of_one_message() -> None:
    data = frame(b"abcdefgh")
    for cut in range(1, len(data)):
        reader = MessageReader()
        assert reader.feed(data[:cut]) == []
        assert reader.buffered == cut
        assert reader.feed(data[cut:]) == [b"abcdefgh"]
        assert reader.buffered == 0


def test_byte_by_byte() -> None:
    out, buffered = read([STREAM[i:i + 1] for i in range(len(STREAM))])
    assert out == MESSAGES
    assert buffered == 0


def test_a_partial_message_stays_buffered() -> None:
    partial = frame(b"next one")[:6]
    reader = MessageReader()
    assert reader.feed(frame(b"first") + partial) == [b"first"]
    assert reader.buffered == 6
    assert reader.feed(frame(b"next one")[6:] + frame(b"then")) == [b"next one", b"then"]
    assert reader.buffered == 0


@given(st.lists(st.binary(max_size=40), max_size=8), st.data())
def test_any_chunking_gives_the_same_messages(messages: list[bytes], data) -> None:
    stream = b"".join(frame(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    assert read(chunks) == (messages, 0)


# -- limits ----------------------------------------------------------------------------------


def test_max_message_boundary() -> None:
    limit = 100
    assert read([frame(b"a" * limit)], limit) == ([b"a" * limit], 0)
    assert read([frame(b"a" * (limit + 1))], limit) == ([Oversized(limit + 1)], 0)
    # The same, not on the fast path (two messages in the chunk).
    out, _ = read([frame(b"a" * limit) + frame(b"b" * (limit + 1)) + frame(b"c")], limit)
    assert out == [b"a" * limit, Oversized(limit + 1), b"c"]


def test_oversized_whole_in_one_chunk_is_skipped() -> None:
    out, buffered = read([frame(b"x" * 50) + frame(b"ok")], max_message=10)
    assert out == [Oversized(50), b"ok"]
    assert buffered == 0


def test_oversized_over_many_chunks_is_reported_once_and_not_buffered() -> None:
    limit = 16
    big = frame(bytes(range(200)) * 5)  # 1000 bytes, and some look like length headers
    reader = MessageReader(limit)
    out: list = []
    for i in range(0, len(big), 7):
        out += reader.feed(big[i:i + 7])
        assert reader.buffered < HEADER.size, "an oversized message's bytes were buffered"
    assert out == [Oversized(1000)]
    assert reader.feed(frame(b"after")) == [b"after"]
    assert reader.buffered == 0


def test_oversized_header_split_then_body_bytewise_then_normal_message() -> None:
    limit = 8
    stream = frame(b"q" * 33) + frame(b"fine") + frame(b"w" * 9) + frame(b"")
    out: list = []
    reader = MessageReader(limit)
    for i in range(len(stream)):
        out += reader.feed(stream[i:i + 1])
        assert reader.buffered <= HEADER.size + limit
    assert out == [Oversized(33), b"fine", Oversized(9), b""]


@pytest.mark.parametrize("cut", range(1, 60))
def test_oversized_followed_by_normal_at_every_boundary(cut: int) -> None:
    stream = frame(b"o" * 40) + frame(b"normal")
    out, buffered = read([stream[:cut], stream[cut:]], max_message=10)
    assert out == [Oversized(40), b"normal"]
    assert buffered == 0


def test_huge_declared_size_is_reported_at_the_header() -> None:
    reader = MessageReader(1024)
    # Only the header and a few bytes: the reader reports it at once, before the body comes.
    assert reader.feed(struct.pack(">I", 0xFFFFFFFF) + b"abc") == [Oversized(0xFFFFFFFF)]
    assert reader.buffered == 0
    assert reader.feed(b"more body bytes" * 10) == []
    assert reader.buffered == 0


def test_max_message_can_change_between_feeds() -> None:
    # The broker re-reads limits.max_request_bytes on every chunk (it is reloadable).
    reader = MessageReader(4)
    assert reader.feed(frame(b"12345")) == [Oversized(5)]
    reader.max_message = 5
    assert reader.feed(frame(b"12345")) == [b"12345"]
