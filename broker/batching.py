"""Automatic batching (limits.batch_requests): single-key gets, and puts of distinct keys,
outside transactions, sent while the front end handles one batch of worker requests (one
event-loop iteration) and bound for the same node go to it as one CACHE_GET_ALL or
CACHE_PUT_ALL; each request still gets exactly its own answer or error.

Only requests whose everything-but-the-key is identical share a batch: the op, the cache id,
the flags (keep-binary), the expiry policy, all of the body before the key.  Per-key order is
kept: a request for a key already waiting in another batch (a get after a put of it, a second
put of it) sends that batch first; any other call sent through the dispatcher sends every
waiting batch first.  A batch the node refuses is sent again request by request, so each gets
its own error; a batch lost with its connection fails each request with that loss (a get
batch is first retried elsewhere, as any read)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from protocol import OpCode, Response
from protocol.binary.codec import read_value
from protocol.binary.registry import CodecContext
from protocol.errors import RemoteProtocolError
from protocol.ipc import Status

from .calls import Call, ReplyCall
from .errors import BrokerError, NodeError
from .pool import NodePool

_OK = Status.OK
_I32 = struct.Struct("<i")
#: The single-key ops that batch, and the op their batch is sent as.
BATCHED_AS = {OpCode.CACHE_GET: OpCode.CACHE_GET_ALL, OpCode.CACHE_PUT: OpCode.CACHE_PUT_ALL}
#: Sizes of the fixed-size values by type code (type byte included): byte, short, int, long,
#: float, double, char, bool, uuid.
_FIXED = {1: 2, 2: 3, 3: 5, 4: 9, 5: 5, 6: 9, 7: 3, 8: 2, 10: 17}
_STRING, _OBJECT = 9, 103


def key_end(body: bytes | memoryview, pos: int) -> int:
    """Where the key encoded at ``body[pos]`` ends, for the keys a batch takes (primitives,
    strings, uuids, complex objects: byte-equal exactly when Ignite sees the same key); -1 for
    any other (not batched)."""
    if pos >= len(body):
        return -1
    code = body[pos]
    size = _FIXED.get(code)
    if size is not None:
        end = pos + size
    elif code == _STRING and pos + 5 <= len(body):
        end = pos + 5 + _I32.unpack_from(body, pos + 1)[0]
    elif code == _OBJECT and pos + 16 <= len(body):
        end = pos + _I32.unpack_from(body, pos + 12)[0]
    else:
        return -1
    return end if pos < end <= len(body) else -1


class _Group:
    """The requests waiting for one batch: same node, op and body before the key."""

    __slots__ = ("bytes", "cache", "calls", "keys", "node", "op", "prefix")

    def __init__(self, op: OpCode, prefix: bytes, cache: int, node: Any) -> None:
        self.op = op
        self.prefix = prefix
        self.cache = cache
        self.node = node
        self.calls: list[tuple[ReplyCall, bytes]] = []  # (call, its key's bytes)
        self.keys: dict[bytes, bytes] = {}  # key -> what follows it (the value of a put)
        self.bytes = len(prefix) + 4


class BatchCall(Call):
    """One CACHE_GET_ALL / CACHE_PUT_ALL on behalf of the requests of a group."""

    __slots__ = ("batcher", "group")

    def __init__(self, batcher: Batcher, group: _Group, body: bytes, deadline: float) -> None:
        super().__init__(BATCHED_AS[group.op], body, group.op == OpCode.CACHE_GET, deadline,
                         None, None, None, group.cache, len(group.prefix) + 4)
        self.batcher = batcher
        self.group = group

    def succeed(self, response: Response) -> None:
        members = self.group.calls
        if self.group.op == OpCode.CACHE_PUT:
            for call, _ in members:
                call.succeed(response)
            return
        found = self.batcher.parse_entries(response.body)  # may raise UnknownSchema: re-run
        if found is None or not found.keys() <= self.group.keys.keys():
            self.batcher.one_by_one(self.group)  # a key we cannot match: ask one by one
            return
        for call, key in members:
            call.reply(_OK, found.get(key))

    def fail(self, exc: BrokerError) -> None:
        if isinstance(exc, NodeError):  # the node refused the batch: each gets its own answer
            self.batcher.one_by_one(self.group)
            return
        for call, _ in self.group.calls:
            call.fail(exc)


class Batcher:
    """Holds the batchable calls of one front-end batch and, when it ends (``flush``), sends
    them grouped by (node, op, body before the key); a call alone goes untouched."""

    def __init__(self, pool: NodePool, send: Callable[[Call], None], codec: CodecContext,
                 max_keys: int, max_bytes: int) -> None:
        self._pool = pool
        self._send = send  # the Sender's: no batching
        self._codec = codec
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self._batch = pool.batch  # the front end's batch of work: open while requests arrive
        self._held: list[ReplyCall] = []  # offered during the open batch, in order
        self._groups: dict[tuple[Any, OpCode, bytes], _Group] = {}
        self._owner: dict[tuple[int, bytes], _Group] = {}  # (cache, key) -> its waiting group
        #: requests sent to a node inside a batch of two or more, by their op
        self.batched_by_op = dict.fromkeys(BATCHED_AS, 0)
        self.batches = 0  # batches sent
        self.unbatched = 0  # requests of batches that were sent again one by one

    def __len__(self) -> int:
        return len(self._held)

    @property
    def batched(self) -> int:
        return sum(self.batched_by_op.values())

    def send(self, call: Call) -> None:
        """What the dispatcher sends with: every held request goes first (order kept)."""
        if self._held:
            self.flush()
        self._send(call)

    def offer(self, call: ReplyCall) -> bool:
        """Hold ``call`` (a CACHE_GET or CACHE_PUT, unpinned, routed by its key, with no types
        to register) until the front-end batch ends; False when no batch is open (it must go
        alone now).  Nothing is parsed here: a request alone in its batch goes as it came."""
        if not self._batch.active:
            return False
        held = self._held
        held.append(call)
        if len(held) >= self.max_keys:
            self.flush()
        return True

    def flush(self) -> None:
        """Send what was held: alone, or grouped in batches (the end of a front-end batch,
        or before any other call)."""
        held = self._held
        if not held:
            return
        self._held = []
        if len(held) == 1:
            self._send(held[0])
            return
        for call in held:
            if not self._group(call):
                self._send(call)  # its key type does not batch (nor do its key's others)
        groups = self._groups
        while groups:
            self._send_group(next(iter(groups.values())))

    def _group(self, call: ReplyCall) -> bool:
        """Add ``call`` to its group, sending first the group that holds its key when order
        requires it, or its own group when full; False when its key type does not batch."""
        body, pos = call.body, call.key_pos
        end = key_end(body, pos)
        op = call.op
        if end < 0 or (op is OpCode.CACHE_GET and end != len(body)):
            return False
        cache = call.route_cache or 0
        prefix, key, rest = body[:pos], body[pos:end], body[end:]
        group = self._owner.get((cache, key))
        if group is not None and (group.op is not OpCode.CACHE_GET or op is not OpCode.CACHE_GET
                                  or group.prefix != prefix):
            self._send_group(group)  # the key waits in another batch: that one goes first
        node = self._node(cache, body, pos)
        slot = (node, op, prefix)
        group = self._groups.get(slot)
        size = len(key) + len(rest)
        if group is not None and (len(group.keys) >= self.max_keys
                                  or group.bytes + size > self.max_bytes):
            self._send_group(group)
            group = None
        if group is None:
            group = self._groups[slot] = _Group(op, prefix, cache, node)
        if key not in group.keys:
            group.keys[key] = rest
            group.bytes += size
        group.calls.append((call, key))
        self._owner[(cache, key)] = group
        return True

    def _node(self, cache: int, body: bytes, pos: int) -> Any:
        pool = self._pool
        if len(pool.by_node) < 2:
            return None
        return pool.topology.node_for(cache, body, pos)

    def _send_group(self, group: _Group) -> None:
        del self._groups[(group.node, group.op, group.prefix)]
        for _, key in group.calls:
            if self._owner.get((group.cache, key)) is group:
                del self._owner[(group.cache, key)]
        if len(group.calls) == 1:
            self._send(group.calls[0][0])
            return
        self.batches += 1
        self.batched_by_op[group.op] += len(group.calls)
        parts = [group.prefix, _I32.pack(len(group.keys))]
        for key, rest in group.keys.items():
            parts += (key, rest)
        deadline = min(call.deadline for call, _ in group.calls)
        self._send(BatchCall(self, group, b"".join(parts), deadline))

    def one_by_one(self, group: _Group) -> None:
        """Send the requests of a batch again, each alone (each gets its own answer)."""
        self.unbatched += len(group.calls)
        for call, _ in group.calls:
            self._send(call)

    def parse_entries(self, body: bytes | memoryview) -> dict[bytes, Any] | None:
        """A CACHE_GET_ALL answer as {key's bytes: value}; None when a key is of a type the
        batch does not take."""
        if len(body) < 4:
            raise RemoteProtocolError(f"a get_all answer of {len(body)} bytes")
        count = _I32.unpack_from(body, 0)[0]
        pos = 4
        found = {}
        for _ in range(count):
            end = key_end(body, pos)
            if end < 0:
                return None
            found[bytes(body[pos:end])], pos = read_value(body, end, ctx=self._codec)
        if pos != len(body):
            raise RemoteProtocolError(f"{len(body) - pos} trailing bytes after the entries")
        return found
