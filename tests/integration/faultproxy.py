"""A fault-injecting TCP proxy between the broker and Ignite nodes, controlled at runtime from
tests: added latency and jitter, resets, half-open connections, a black hole, slow reads, and a
node that accepts but never answers the handshake.

One ``FaultProxy`` listens on 127.0.0.1 (an ephemeral port) for one upstream node and runs its
own asyncio loop in a daemon thread; every method is safe to call from any thread. Faults:

- ``latency`` / ``jitter`` (seconds): each chunk, both directions, is held ``latency`` plus up
  to ``jitter`` before it is passed on (order kept, as TCP keeps it).
- ``slow_reads`` (bytes per second): the proxy reads from the broker no faster than this, so
  the broker's writes back up into its socket buffers.
- ``reset()``: every open connection is aborted with an RST; with ``refuse=True`` the port is
  closed as well (connections refused) until ``heal()``.
- ``half_open()``: open connections stop passing bytes both ways and are never closed (a peer
  gone without FIN); new connections work.
- ``black_hole()``: as half-open, and new connections are accepted but never answered.
- ``silent_handshake()``: new connections are accepted, their handshake read and never answered;
  open connections keep working.
- ``heal()``: back to passing everything; stalled connections stay stalled (their peer has long
  given up on them, as after a real outage) and are closed.

``hide_discovery`` (on by default) clears the client's endpoint-discovery feature bit in the
handshake it passes on, so the broker reaches the node only through the proxy (a node that
does not offer CLUSTER_GROUP_GET_NODES_ENDPOINTS, as older Ignite versions do).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any

from protocol.features import Feature

_CHUNK = 65536
# The handshake request: frame length i32, op i8, version 3 x i16, client code i8, then (from
# 1.7.0) the features as a byte[]: type code i8 (12), length i32, the BitSet's bytes.
_FEATURES_AT = 4 + 1 + 6 + 1 + 1 + 4
_BYTE_ARRAY = 12
_DISCOVERY_BIT = int(Feature.CLUSTER_GROUP_GET_NODES_ENDPOINTS)


class ProxyError(Exception):
    """The proxy could not start or was misused."""


class _Link:
    """One proxied connection: the broker's side, the node's side, and whether it is stalled."""

    def __init__(self, down: asyncio.StreamWriter, up: asyncio.StreamWriter | None) -> None:
        self.down = down
        self.up = up
        self.stalled = asyncio.Event()  # set: pass nothing more, close nothing
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        """Close both sides with an RST (SO_LINGER 0), not a FIN."""
        for writer in (self.down, self.up):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    """A proxy to ``upstream`` (host, port); ``address`` is where the broker should connect."""

    def __init__(self, upstream: tuple[str, int], *, hide_discovery: bool = True) -> None:
        self.upstream = upstream
        self.hide_discovery = hide_discovery
        self.latency = 0.0
        self.jitter = 0.0
        self.slow_reads = 0  # bytes per second from the broker; 0: unlimited
        self._new_conns = "pass"  # pass | silent (accept, never answer)
        self._links: set[_Link] = set()
        self._held: set[asyncio.StreamWriter] = set()  # silent connections
        self.accepted = 0  # connections accepted so far (a figure for tests)
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"faultproxy-{upstream[1]}")

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self._port)

    # -- faults (any thread) --------------------------------------------------------------------

    def set_latency(self, latency: float, jitter: float = 0.0) -> None:
        self.latency, self.jitter = latency, jitter

    def set_slow_reads(self, bytes_per_second: int) -> None:
        self.slow_reads = bytes_per_second

    def reset(self, *, refuse: bool = False) -> None:
        self._call(self._reset(refuse))

    def half_open(self) -> None:
        self._call(self._stall_all())

    def black_hole(self) -> None:
        self._new_conns = "silent"
        self._call(self._stall_all())

    def silent_handshake(self) -> None:
        self._new_conns = "silent"

    def heal(self) -> None:
        self.latency = self.jitter = 0.0
        self.slow_reads = 0
        self._new_conns = "pass"
        self._call(self._heal())

    def open_connections(self) -> int:
        """Connections passing bytes now (not stalled, not held silent)."""
        return sum(1 for link in list(self._links) if not link.stalled.is_set())

    # -- the loop's side ------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        future: Future[None] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        future.result(30)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port or 0,
                                                  reuse_address=True)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        await self._reset(refuse=True)

    async def _reset(self, refuse: bool) -> None:
        if refuse and self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self._links):
            link.abort()
        self._links.clear()
        for writer in list(self._held):
            writer.transport.abort()
        self._held.clear()

    async def _stall_all(self) -> None:
        for link in list(self._links):
            link.stalled.set()

    async def _heal(self) -> None:
        for link in [link for link in self._links if link.stalled.is_set()]:
            link.abort()
            self._links.discard(link)
        for writer in list(self._held):
            writer.transport.abort()
        self._held.clear()
        await self._listen()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._new_conns == "silent":
            await self._hold(reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [asyncio.create_task(self._pipe(reader, up_writer, link, from_broker=True)),
                      asyncio.create_task(self._pipe(up_reader, writer, link, from_broker=False))]
        await asyncio.gather(*link.tasks, return_exceptions=True)
        self._links.discard(link)
        if not link.stalled.is_set():
            for side in (writer, up_writer):
                side.close()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Accept and read everything, answer nothing, until the peer closes."""
        self._held.add(writer)
        with contextlib.suppress(OSError):
            while await reader.read(_CHUNK):
                pass
        self._held.discard(writer)
        writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    link: _Link, *, from_broker: bool) -> None:
        """Copy one direction; delayed chunks queue behind each other so order is kept."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, writer, link))
        first = from_broker and self.hide_discovery
        last_due = 0.0
        try:
            while True:
                if link.stalled.is_set():
                    await asyncio.Future()  # half-open: read nothing more, close nothing
                size = _CHUNK if not (from_broker and self.slow_reads) else max(
                    1, self.slow_reads // 10)
                data = await reader.read(size)
                if first:
                    data, first = _hide_discovery(data), False
                if not data:
                    break
                if from_broker and self.slow_reads:
                    await asyncio.sleep(len(data) / self.slow_reads)
                due = time.monotonic() + self.latency + random.uniform(0, self.jitter)
                last_due = max(due, last_due)
                queue.put_nowait((last_due, data))
            queue.put_nowait((0.0, b""))
            await sender
        except OSError:
            if not link.stalled.is_set():
                link.abort()
        finally:
            sender.cancel()

    @staticmethod
    async def _send(queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter,
                    link: _Link) -> None:
        while True:
            due, data = await queue.get()
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if link.stalled.is_set():
                await asyncio.Future()  # half-open: never pass anything again
            writer.write(data)
            await writer.drain()


def _hide_discovery(data: bytes) -> bytes:
    """The first chunk from the broker (its handshake) with the discovery feature bit cleared;
    anything else unchanged."""
    byte, bit = divmod(_DISCOVERY_BIT, 8)
    at = _FEATURES_AT + byte
    if len(data) <= at or data[4] != 1 or data[_FEATURES_AT - 5] != _BYTE_ARRAY:
        return data
    (length,) = struct.unpack_from("<i", data, _FEATURES_AT - 4)
    if length <= byte:
        return data
    patched = bytearray(data)
    patched[at] &= ~(1 << bit) & 0xFF
    return bytes(patched)
