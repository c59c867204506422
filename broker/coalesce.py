"""Read coalescing (limits.coalesce_reads): identical reads in flight at once share one
cluster request, whose answer replies to each of them."""

from __future__ import annotations

from typing import Any

from protocol import OpCode

from .calls import ReplyFn

#: Reads that coalesce_reads may share between workers.
COALESCABLE = frozenset({OpCode.CACHE_GET, OpCode.CACHE_GET_ALL, OpCode.CACHE_CONTAINS_KEY,
                         OpCode.CACHE_CONTAINS_KEYS})


class Reads:
    """The reads in flight, by (op, body), with the replies waiting for each."""

    __slots__ = ("_in_flight", "coalesced")

    def __init__(self) -> None:
        self._in_flight: dict[tuple[OpCode, bytes], list[ReplyFn]] = {}
        self.coalesced = 0  # reads answered by another's request

    def __len__(self) -> int:
        return len(self._in_flight)

    def join(self, op: OpCode, body: bytes, reply: ReplyFn) -> ReplyFn | None:
        """Wait for an identical read already in flight (None), or become the one that is
        sent (the returned reply answers every waiter).

        A joined read may miss a write acknowledged after the first identical read was sent;
        that is why it is off by default."""
        key = (op, body)
        waiters = self._in_flight.get(key)
        if waiters is not None:
            waiters.append(reply)
            self.coalesced += 1
            return None
        waiters = self._in_flight[key] = [reply]

        def answer_all(status: int, payload: Any) -> None:
            del self._in_flight[key]
            for waiting in waiters:
                waiting(status, payload)

        return answer_all
