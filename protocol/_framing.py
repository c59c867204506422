"""Splitting the received byte stream into length-prefixed frames, with a frame-size limit."""

from __future__ import annotations

import struct

from .errors import FrameTooLarge, RemoteProtocolError

__all__ = ["DEFAULT_MAX_FRAME", "FrameSplitter"]

DEFAULT_MAX_FRAME = 64 * 2**20  # payload bytes, not counting the 4-byte length prefix

_I32 = struct.Struct("<i")


class FrameSplitter:
    """Collects received chunks and cuts ``i32 N | N bytes`` frames out of them.

    How the buffering works, and why: received chunks are immutable ``bytes``. While
    whole frames sit inside the current chunk (the common case: many small responses per
    read), a frame is returned as a memoryview slice of that chunk, with no copy at all.
    Chunks arriving while a frame is incomplete are only appended to a list; they are
    joined once, when enough bytes for the whole frame are there. So a 64 MiB frame that
    trickles in as 64 KiB reads costs one join, not a quadratic series of re-copies. A
    returned memoryview keeps its chunk alive; that is the price of not copying.
    """

    __slots__ = ("_head", "_pos", "_tail", "_tail_len", "_view", "eof", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.eof = False
        self._head = b""  # the chunk being cut up, from offset _pos on
        self._view = memoryview(self._head)
        self._pos = 0
        self._tail: list[bytes] = []  # chunks received after _head, not yet joined
        self._tail_len = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return len(self._head) - self._pos + self._tail_len

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes (copied unless already immutable ``bytes``)."""
        chunk = bytes(data)
        if not chunk:
            return
        if self._pos == len(self._head) and not self._tail:
            self._set_head(chunk)
        else:
            self._tail.append(chunk)
            self._tail_len += len(chunk)

    def next_frame(self) -> memoryview | None:
        """Return the next complete frame's payload (without the prefix), or None."""
        head, pos = self._head, self._pos
        if len(head) - pos >= 4:
            (n,) = _I32.unpack_from(head, pos)
            end = pos + 4 + n
            if 0 <= n <= self.max_frame and end <= len(head):  # fast path: no copy
                self._pos = end
                return self._view[pos + 4 : end]
        return self._next_frame_slow()

    def _next_frame_slow(self) -> memoryview | None:
        if self.buffered < 4:
            return None
        if len(self._head) - self._pos < 4:
            self._join()
        (n,) = _I32.unpack_from(self._head, self._pos)
        if n < 0:
            raise RemoteProtocolError(f"negative frame length {n}")
        if n > self.max_frame:
            raise FrameTooLarge(n, self.max_frame)
        if self.buffered < 4 + n:
            return None
        if len(self._head) - self._pos < 4 + n:
            self._join()
        pos = self._pos
        self._pos = pos + 4 + n
        return self._view[pos + 4 : self._pos]

    def _join(self) -> None:
        self._set_head(b"".join([self._view[self._pos :], *self._tail]))
        self._tail = []
        self._tail_len = 0

    def _set_head(self, chunk: bytes) -> None:
        self._head = chunk
        self._view = memoryview(chunk)
        self._pos = 0
