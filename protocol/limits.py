"""The codec's hard limits: how deep values nest and how many digits a decimal has.

One source for every layer: ``protocol.ipc`` (msgpack from workers), the binary codec (bytes
from nodes, requests to them) and the broker, which reports them. They bound what one message
can cost, whoever sent it: stack depth and CPU time, not sizes (frame limits do that).
"""

from __future__ import annotations

__all__ = [
    "MAX_DECIMAL_DIGITS",
    "MAX_DECIMAL_MAGNITUDE_BYTES",
    "MAX_NESTING",
    "MAX_PARTITIONS_COUNT",
]

MAX_NESTING = 32
"""Containers nested inside one another, at most, in one value or IPC message.

- IPC (``protocol.ipc``): every msgpack array and map and every ext value (COLLECTION, MAP,
  OBJECT, ...) counts one level, the envelope's own array and args map included, so a
  request argument may nest ``MAX_NESTING - 2`` levels. The arrays an ext value's payload
  is made of (``[kind, [items]]``) belong to that ext value's level.
- Binary codec: every Collection, Map, Object[], complex object, wrapped object and handle.

Why 32: real data nests a handful of levels (JSON-like documents rarely reach 20), and the
bound keeps the stack a message can use small. Each ext level of an IPC message is one nested
msgpack call: ``unpackb`` keeps ~40 KB of state on the C stack (a 1 MiB thread stack
overflowed at 25 levels, 8 MiB at ~195), so ``protocol.ipc`` moves levels beyond the fourth to
a heap-allocated Unpacker, and 32 levels unpack and pack in a 256 KiB thread stack (measured).
The encoders' Python recursion (two or three frames per level) stays far below the
interpreter's limit.
"""

MAX_DECIMAL_DIGITS = 4096
"""Digits of a DECIMAL's unscaled value, at most (Java's BigDecimal precision).

Far above real use (SQL DECIMAL tops out at 38 digits in most databases, 1000 in
PostgreSQL's declared form) and below CPython's own int/str conversion guard (4300 digits).
The binary <-> decimal conversion is quadratic in CPython; at this bound it costs ~0.1 ms each
way, where an unbounded 1 MB value froze the event loop for 31 s.
"""

MAX_DECIMAL_MAGNITUDE_BYTES = ((10**MAX_DECIMAL_DIGITS - 1).bit_length() + 8) // 8
"""Bytes of the largest magnitude with MAX_DECIMAL_DIGITS digits, sign bit included (1701):
the bound a node's DECIMAL is checked against before any conversion."""

MAX_PARTITIONS_COUNT = 65_000
"""Ignite's own bound on partitions (CacheConfiguration.MAX_PARTITIONS_COUNT): a partition
number in a query is 0..MAX_PARTITIONS_COUNT - 1."""
