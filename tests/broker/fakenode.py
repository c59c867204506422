"""A fake Ignite node for broker unit tests (no JVM): listens on broker.stream's in-memory
network and answers with bytes a real Ignite 2.17 node sent (tests/protocol/vectors): the
captured handshake, and for each request the captured answer to the same (op, body), else the
captured answer to the first request of that op.  Tests hold, fail, or override answers, and
take the node down (EOF) or make it freeze (no answers, connections stay open).

Also ``Harness``: a NodePool, a Dispatcher and a Janitor wired on that network, the way
broker/lifecycle.py wires them, with helpers to send worker requests and collect replies."""

from __future__ import annotations

import asyncio
import json
import struct
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker.dispatch import Dispatcher
from broker.handlers import HANDLERS
from broker.janitor import Janitor
from broker.limits import Limits
from broker.pool import NodePool
from broker.stream import MemoryNetwork, MemoryStream
from broker.workers import Workers
from protocol import ConnectionConfig, OpCode
from protocol.ipc import Request

VECTORS = Path(__file__).resolve().parents[1] / "protocol" / "vectors"
FEATURES = frozenset({2, 3, 11, 13})  # what lifecycle.py asks nodes for


def _load() -> tuple[bytes, dict[tuple[int, bytes], Any], dict[int, Any]]:
    session = json.loads((VECTORS / "captured_ignite_2.17.0.json").read_text())["sessions"][0]
    handshake = bytes.fromhex(session["steps"][0]["response_hex"])
    exact: dict[tuple[int, bytes], Any] = {}
    first: dict[int, Any] = {}
    for name in ("ops_kv", "ops_queries", "ops_cacheconfig", "ops_cluster_tx"):
        for conn in json.loads((VECTORS / f"{name}.json").read_text())["connections"]:
            for exchange in conn["exchanges"]:
                _remember(exchange, exact, first)
    for exchange in json.loads((VECTORS / "types_captured_ignite_2.17.0.json").read_text())[
            "exchanges"]:
        _remember(exchange, exact, first)
    # discovery: "no node joined or left" unless a test says otherwise (the captured full list,
    # NODE_ENDPOINTS_ALL, names the capture cluster's ports)
    for key in [k for k in exact if k[0] == OpCode.CLUSTER_GROUP_GET_NODE_ENDPOINTS]:
        del exact[key]
    first[OpCode.CLUSTER_GROUP_GET_NODE_ENDPOINTS] = _cluster_exchange(
        "node_endpoints-since-current")
    affinity = json.loads((VECTORS / "affinity_ignite_2.17.0.json").read_text())["affinity"]
    for mapping in sorted(affinity, key=lambda a: a["name"] != "no-features"):
        _remember({"op": "CACHE_PARTITIONS", "request_hex": mapping["request_body_hex"],
                   "response_hex": mapping["response_body_hex"]}, exact, first)
    return handshake, exact, first


def _cluster_exchange(name: str) -> bytes:
    for conn in json.loads((VECTORS / "ops_cluster_tx.json").read_text())["connections"]:
        for exchange in conn["exchanges"]:
            if exchange["name"] == name:
                return bytes.fromhex(exchange["response_hex"])
    raise KeyError(name)


def _remember(exchange: dict[str, Any], exact: dict[tuple[int, bytes], Any],
              first: dict[int, Any]) -> None:
    error = exchange.get("error")
    if exchange.get("request_hex") is None or (exchange.get("response_hex") is None
                                               and not error):
        return  # a notification, or an answer stored as a digest only
    op = OpCode[exchange["op"]]
    answer = (error["status"], error.get("message") or "") if error else bytes.fromhex(
        exchange["response_hex"])
    exact.setdefault((op, bytes.fromhex(exchange["request_hex"])), answer)
    if not error:
        first.setdefault(op, answer)


HANDSHAKE_OK, EXACT_ANSWERS, FIRST_ANSWERS = _load()
NODE_ENDPOINTS_ALL = _cluster_exchange("node_endpoints")

#: Captured bodies the tests refer to by name.
_TYPES = json.loads((VECTORS / "types_captured_ignite_2.17.0.json").read_text())["exchanges"]
CAPTURED = {e["name"]: e for e in _TYPES if "response_hex" in e}


def _ignite_str(text: str) -> bytes:
    data = text.encode()
    return b"\x09" + struct.pack("<i", len(data)) + data


def response_frame(request_id: int, body: bytes = b"", *,
                   error: tuple[int, str] | None = None,
                   topology: tuple[int, int] | None = None) -> bytes:
    """A protocol 1.7 response frame (written with struct, not with protocol/)."""
    flags, tail = 0, b""
    if topology is not None:
        flags |= 0x2
        tail += struct.pack("<qi", *topology)
    if error is not None:
        flags |= 0x1
        tail += struct.pack("<i", error[0]) + _ignite_str(error[1])
        body = b""
    payload = struct.pack("<qh", request_id, flags) + tail + body
    return struct.pack("<i", len(payload)) + payload


Answer = bytes | tuple[int, str] | None  # a body, (status, message), or None: no answer


class FakeNode:
    """One node at ``host:port`` on ``network``."""

    def __init__(self, network: MemoryNetwork, port: int, *, host: str = "127.0.0.1",
                 node_id: uuid.UUID | None = None) -> None:
        self.network = network
        self.host, self.port = host, port
        self.node_id = node_id or uuid.uuid4()
        self.streams: list[MemoryStream] = []
        self.requests: list[tuple[OpCode, int, bytes]] = []  # (op, request id, body)
        self.chunks = 0  # write() calls the broker made to this node
        self.held: list[tuple[MemoryStream, int, OpCode, bytes]] = []
        self.hold: set[OpCode] = set()  # answer these only on release()
        self.frozen = False  # answer nothing (a stopped JVM: its socket still accepts bytes)
        self.overrides: dict[OpCode, Callable[[bytes], Answer]] = {}
        self.topology: tuple[int, int] | None = None  # sent with every answer when set

    def __repr__(self) -> str:
        return f"<FakeNode {self.host}:{self.port} streams={len(self.streams)}>"

    def start(self) -> FakeNode:
        self.network.listen(self.host, self.port, self._accept)
        return self

    def stop(self) -> None:
        """The node goes away: connections see EOF, new ones are refused."""
        self.network.unlisten(self.host, self.port)
        for stream in self.streams:
            stream.eof()

    def ops(self) -> list[OpCode]:
        return [op for op, _, _ in self.requests]

    def release(self) -> None:
        held, self.held = self.held, []
        for stream, rid, op, body in held:
            self._answer(stream, rid, op, body)

    # -- serving ------------------------------------------------------------------------------

    def _accept(self, stream: MemoryStream) -> None:
        self.streams.append(stream)
        buffer = bytearray()
        greeted = False

        def received(data: bytes) -> None:
            nonlocal greeted
            self.chunks += 1
            buffer.extend(data)
            while len(buffer) >= 4:
                size = struct.unpack_from("<i", buffer)[0]
                if len(buffer) < 4 + size:
                    return
                frame = bytes(buffer[4:4 + size])
                del buffer[:4 + size]
                if not greeted:
                    greeted = True
                    stream.feed(_handshake(self.node_id))
                    continue
                op, rid = struct.unpack_from("<hq", frame)
                self._request(stream, rid, OpCode(op), frame[10:])

        stream.peer_write = received

    def _request(self, stream: MemoryStream, rid: int, op: OpCode, body: bytes) -> None:
        self.requests.append((op, rid, body))
        if self.frozen or op in self.hold:
            self.held.append((stream, rid, op, body))
            return
        self._answer(stream, rid, op, body)

    def _answer(self, stream: MemoryStream, rid: int, op: OpCode, body: bytes) -> None:
        override = self.overrides.get(op)
        answer = override(body) if override is not None else self.answer(op, body)
        if answer is None:
            return
        if isinstance(answer, tuple):
            stream.feed(response_frame(rid, error=answer, topology=self.topology))
        else:
            stream.feed(response_frame(rid, answer, topology=self.topology))

    def answer(self, op: OpCode, body: bytes) -> Answer:
        """The captured answer to (op, body), or to the first captured request of ``op``."""
        if op == OpCode.HEARTBEAT:
            return b""
        found = EXACT_ANSWERS.get((op, body))
        if found is None:
            found = FIRST_ANSWERS.get(op)
        if found is None:
            return (1, f"fake node: no captured answer for {op.name}")
        return found


def _handshake(node_id: uuid.UUID) -> bytes:
    """The captured handshake answer (protocol 1.7.0, features 2, 3, 11) with our node id
    (the last 16 bytes: two little-endian longs, most significant first)."""
    most, least = node_id.int >> 64, node_id.int & (2**64 - 1)
    return HANDSHAKE_OK[:-16] + struct.pack("<QQ", most, least)


class Harness:
    """Nodes, pool, dispatcher and janitor on one in-memory network; call inside a loop."""

    def __init__(self, nodes: int = 1, *, limits: Limits | None = None, **pool_options: Any
                 ) -> None:
        self.network = MemoryNetwork()
        self.nodes = [FakeNode(self.network, 10800 + i).start() for i in range(nodes)]
        options = {"connect_timeout": 1.0, "node_warmup": 0.0, "max_backoff": 0.05,
                   **pool_options}
        self.pool = NodePool([(n.host, n.port) for n in self.nodes],
                             ConnectionConfig(features=FEATURES),
                             connect=self.network.connect, **options)
        self.workers = Workers()
        self.dispatcher = Dispatcher(self.pool, self.workers, lambda: {"fake": True},
                                     limits or Limits(), handlers=HANDLERS)
        self.janitor = Janitor(self.pool, self.workers, self.dispatcher, liveness=60.0,
                               heartbeat_timeout=0.5)
        self.replies: dict[int, tuple[int, Any]] = {}
        self._next_id = 0

    async def start(self, ready: int | None = None) -> Harness:
        await self.pool.start(wait=1.0)
        await self.until(lambda: len(self.pool.ready) >= (ready or len(self.nodes)))
        return self

    async def close(self) -> None:
        await self.pool.close()

    def send(self, op: str, args: dict[str, Any] | None = None, *, worker: bytes = b"w1",
             deadline_ms: int = 0) -> int:
        """Dispatch one worker request; its reply lands in ``replies[request id]``."""
        self._next_id += 1
        rid = self._next_id
        self.dispatcher.dispatch(worker, Request(rid, op, deadline_ms, args or {}),
                                 self._reply)
        return rid

    def _reply(self, rid: int, status: int, payload: Any) -> None:
        assert rid not in self.replies, f"request {rid} answered twice"
        self.replies[rid] = (status, payload)

    async def call(self, op: str, args: dict[str, Any] | None = None, **kw: Any
                   ) -> tuple[int, Any]:
        rid = self.send(op, args, **kw)
        await self.until(lambda: rid in self.replies)
        return self.replies[rid]

    async def until(self, condition: Callable[[], bool], timeout: float = 2.0) -> None:
        """Run the loop until ``condition()`` holds (fails the test after ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            if loop.time() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.001)

    async def settle(self, iterations: int = 20) -> None:
        """Let pending callbacks run (answers in flight on the in-memory streams)."""
        for _ in range(iterations):
            await asyncio.sleep(0)


def run(coro_fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: run an async test in a fresh event loop."""

    def test(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(coro_fn(*args, **kwargs))

    test.__name__ = coro_fn.__name__
    test.__doc__ = coro_fn.__doc__
    return test
