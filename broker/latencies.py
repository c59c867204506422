"""Latencies: the broker's time to answer each of its last requests, for ``admin status``."""

from __future__ import annotations


class Latencies:
    """The broker's time to answer each of the last ``SIZE`` requests, from the moment it
    took them (a ring): ``admin status`` shows their p99."""

    SIZE = 2048  # a power of two
    __slots__ = ("_count", "_ring")

    def __init__(self) -> None:
        self._ring = [0.0] * self.SIZE
        self._count = 0

    def add(self, seconds: float) -> None:
        self._ring[self._count & (self.SIZE - 1)] = seconds
        self._count += 1

    def quantile(self, q: float) -> float | None:
        if not self._count:
            return None
        ordered = sorted(self._ring[:min(self._count, self.SIZE)])
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]
