"""The floor under the numbers: how fast the pieces can go with nothing on top of them.

A latency ladder of sequential round trips, each one layer thinner than the next, all against
the same key on the same node:

    bare AF_UNIX SOCK_SEQPACKET echo, blocking           an ipc hop without ZeroMQ
    bare ZeroMQ ipc echo, blocking Python server        the transport's floor
    bare ZeroMQ ipc echo, asyncio server (add_reader)    ... served the way broker/frontend.py is
    (the same on uvloop, when uvloop is installed)
    broker ping over a raw DEALER / raw stream socket    the broker's fixed cost, no cluster
    broker cache_get over a raw DEALER / stream socket   the broker's get, no stub
    libclient Client.get over ipc:// and unix://         the whole stub + broker path
    raw Ignite get: protocol.ClientConnection + socket   the cluster's floor (sans-IO codec)
    pyignite Client.get                                  the baseline

and, after the ladder, two bare echo servers with both ends pinned to one CPU, then to two
(what a wake-up across CPUs costs): the blocking AF_UNIX one, and a uvloop unix-stream server
that unpacks and packs each message (the least an asyncio broker's hop can cost).

The rungs are measured in interleaved slices, so that load from elsewhere on the machine hits
them alike.  Also the broker at saturation (``broker_saturation``: one process pipelining raw
``cache_get`` requests on several connections; the broker's CPU per op while it is the
bottleneck) and the broker's memory with many idle stubs (``idle_stubs_rss``: a few processes
each open many connections, send ``hello`` once each, and stay connected); both for either
transport (unix:// stream or ZeroMQ).

    .venv/bin/python bench/floor.py --node 127.0.0.1:12000 --endpoint ipc:///path/broker.sock \
        --stream-endpoint unix:///path/broker.stream
    .venv/bin/python bench/floor.py        # starts its own 1-node cluster and broker (port 12040)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import itertools
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.workloads import KV_CACHE, VALUE, Lib, Target  # noqa: E402

KEY = 1
ECHO_PAYLOAD = b"x" * 64
_WARMUP = 50


# -- timing ---------------------------------------------------------------------------------------


def timed(call: Callable[[], Any], n: int) -> list[int]:
    """Nanoseconds of n sequential calls, after a warm-up."""
    for _ in range(_WARMUP):
        call()
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        before = clock()
        call()
        out.append(clock() - before)
    return out


def row(key: str, name: str, latencies: list[int]) -> dict[str, Any]:
    ordered = sorted(latencies)
    n = len(ordered)
    return {"key": key, "name": name, "n": n, "p50_us": ordered[n // 2] / 1000,
            "p99_us": ordered[min(n - 1, int(n * 0.99))] / 1000,
            "mean_us": statistics.fmean(ordered) / 1000}


# -- ZeroMQ echo servers (child processes) ---------------------------------------------------------


def echo_blocking(endpoint: str, ready: Any) -> None:
    """ROUTER that echoes every message, in a blocking loop."""
    import zmq

    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    ready.send("ready")
    while True:
        frames = sock.recv_multipart()
        if frames[1] == b"stop":
            break
        sock.send_multipart(frames)
    sock.close()


def echo_asyncio(endpoint: str, ready: Any) -> None:
    """ROUTER echo on an asyncio loop, woken through the ZMQ fd like broker/frontend.py."""
    import zmq

    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def on_readable() -> None:
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    return
                if frames[1] == b"stop":
                    done.set()
                    return
                sock.send_multipart(frames, zmq.NOBLOCK)

        loop.add_reader(sock.getsockopt(zmq.FD), on_readable)
        loop.call_soon(on_readable)
        ready.send("ready")
        await done.wait()
        loop.remove_reader(sock.getsockopt(zmq.FD))

    asyncio.run(serve())
    sock.close()


def echo_uvloop(endpoint: str, ready: Any) -> None:
    """The asyncio echo on uvloop's event loop (libuv) instead of asyncio's own."""
    import uvloop

    uvloop.install()
    echo_asyncio(endpoint, ready)


def echo_unix(path: str, ready: Any) -> None:
    """A plain AF_UNIX SOCK_SEQPACKET echo (no ZeroMQ, no I/O threads), blocking."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(path)
    server.listen(1)
    ready.send("ready")
    conn, _ = server.accept()
    while (data := conn.recv(65536)) and data != b"stop":
        conn.send(data)
    conn.close()
    server.close()


def echo_stream_uvloop(path: str, ready: Any) -> None:
    """The least an asyncio broker does per request: a uvloop unix-stream server that unpacks
    each framed msgpack request and packs it back (no dispatch, no cluster)."""
    import msgpack
    import uvloop

    from protocol.ipcstream import HEADER

    async def serve() -> None:
        closed = asyncio.get_running_loop().create_future()

        class Echo(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:  # the client sends a frame at a time
                body = msgpack.packb(msgpack.unpackb(data[HEADER.size:]))
                self.transport.write(HEADER.pack(len(body)) + body)

            def connection_lost(self, exc: Exception | None) -> None:
                closed.set_result(None)

        server = await asyncio.get_running_loop().create_unix_server(Echo, path)
        ready.send("ready")
        await closed
        server.close()

    uvloop.run(serve())


def echo_placed(path: str, ready: Any, serve: Callable[[str, Any], None], cpu: int) -> None:
    """An echo server pinned to one CPU."""
    os.sched_setaffinity(0, {cpu})
    serve(path, ready)


def _dealer(endpoint: str, context: Any = None) -> Any:
    import zmq

    sock = (context or zmq.Context.instance()).socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(endpoint)
    return sock


@contextlib.contextmanager
def _echo_server(ctx: Any, server: Callable[[str, Any], None], address: str) -> Iterator[None]:
    """Run ``server(address, ready_pipe)`` in a child process until the block ends."""
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=server, args=(address, child), daemon=True)
    proc.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the echo server did not start")
        parent.recv()
        yield
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()


@contextlib.contextmanager
def echo_rung(server: Callable[[str, Any], None], ctx: Any) -> Iterator[Callable[[], None]]:
    """A round trip to a ZeroMQ echo server running in a child process."""
    with tempfile.TemporaryDirectory(prefix="bench-echo-") as tmp:
        endpoint = f"ipc://{tmp}/echo.sock"
        with _echo_server(ctx, server, endpoint):
            sock = _dealer(endpoint)

            def echo() -> None:
                sock.send(ECHO_PAYLOAD)
                sock.recv()

            try:
                yield echo
            finally:
                sock.send(b"stop")
                sock.close()


@contextlib.contextmanager
def unix_echo_rung(ctx: Any) -> Iterator[Callable[[], None]]:
    """A round trip over a bare Unix socket: what an ipc hop costs without ZeroMQ."""
    with tempfile.TemporaryDirectory(prefix="bench-unix-") as tmp:
        path = f"{tmp}/echo.sock"
        with _echo_server(ctx, echo_unix, path):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sock.connect(path)

            def echo() -> None:
                sock.send(ECHO_PAYLOAD)
                sock.recv(65536)

            try:
                yield echo
            finally:
                sock.send(b"stop")
                sock.close()


def _placed_client(server: str, path: str, cpu: int, n: int, conn: Any) -> None:
    """n round trips from ``cpu`` to an echo server of kind ``server`` (a child process)."""
    from protocol import ipc
    from protocol.ipcstream import frame

    os.sched_setaffinity(0, {cpu})
    if server == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        payload = ECHO_PAYLOAD
    else:  # the bare uvloop server reads framed msgpack
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        payload = frame(ipc.pack_request(1, "ping", {}))
    sock.connect(path)

    def echo() -> None:
        sock.sendall(payload)
        sock.recv(65536)

    conn.send(timed(echo, n))
    if server == "unix":
        sock.send(b"stop")
    sock.close()


_PLACED = (
    ("unix_echo", "unix", echo_unix, "AF_UNIX echo, blocking"),
    ("stream_uvloop", "uvloop", echo_stream_uvloop,
     "unix stream, a bare uvloop server (msgpack in, out)"),
)


def placed_rows(ctx: Any, n: int) -> list[dict[str, Any]]:
    """Two bare echo servers (the blocking AF_UNIX one, and a uvloop server doing what any
    asyncio broker must: unpack and pack) with both ends pinned to one CPU, then to two.
    The difference is what a wake-up across CPUs costs on this machine, paid by every extra
    process on a path; the scheduler, not the code, decides which one a path gets."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return []
    rows = []
    for key, server, serve, title in _PLACED:
        for suffix, where, server_cpu in (("one_cpu", "both ends on one CPU", cpus[0]),
                                          ("two_cpus", "the ends on two CPUs", cpus[1])):
            with tempfile.TemporaryDirectory(prefix="bench-placed-") as tmp:
                path = f"{tmp}/echo.sock"
                placed = functools.partial(echo_placed, serve=serve, cpu=server_cpu)
                with _echo_server(ctx, placed, path):
                    parent, child = ctx.Pipe()
                    client = ctx.Process(target=_placed_client,
                                         args=(server, path, cpus[0], n, child))
                    client.start()
                    latencies = parent.recv()
                    client.join()
            rows.append(row(f"{key}_{suffix}", f"{title}, pinned: {where}", latencies))
    return rows


# -- the broker without the stub ------------------------------------------------------------------


class StreamRaw:
    """A bare unix:// client: framed msgpack on a blocking Unix socket, no stub logic."""

    def __init__(self, endpoint: str) -> None:
        from protocol.ipcstream import MessageReader, stream_path

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        for _ in range(1000):
            try:
                self.sock.connect(stream_path(endpoint))
                break
            except BlockingIOError:  # the listen backlog is full: the broker is accepting
                time.sleep(0.01)
        self.reader = MessageReader()
        self.messages: list[bytes] = []

    def send(self, message: bytes) -> None:
        from protocol.ipcstream import frame

        self.sock.sendall(frame(message))

    def recv(self) -> bytes:
        while not self.messages:
            data = self.sock.recv(1 << 18)
            if not data:
                raise ConnectionError("the broker closed the connection")
            self.messages += self.reader.feed(data)  # type: ignore[arg-type]
        return self.messages.pop(0)

    def close(self) -> None:
        self.sock.close()


def _raw_client(endpoint: str) -> Any:
    from protocol.ipcstream import is_stream_endpoint

    return StreamRaw(endpoint) if is_stream_endpoint(endpoint) else _dealer(endpoint)


@contextlib.contextmanager
def broker_rung(endpoint: str, op: str, args: dict[str, Any]) -> Iterator[Callable[[], None]]:
    """One IPC op over a bare DEALER or stream socket: the broker's cost without libclient's."""
    from protocol import ipc

    sock = _raw_client(endpoint)
    ids = iter(range(1, 1 << 62))

    def call() -> None:
        request_id = next(ids)
        sock.send(ipc.pack_request(request_id, op, args))
        reply = ipc.unpack_reply(sock.recv())
        if reply.request_id != request_id or reply.status != 0:
            raise RuntimeError(f"broker {op}: {reply}")

    try:
        yield call
    finally:
        sock.close()


# -- Ignite without the broker --------------------------------------------------------------------


class RawIgnite:
    """One thin-client connection driven by the project's sans-IO ``protocol`` over a plain
    blocking socket: the cheapest get this Python can do."""

    def __init__(self, address: tuple[str, int]) -> None:
        from protocol import ClientConnection, ConnectionConfig

        self.conn = ClientConnection(ConnectionConfig())
        self.sock = socket.create_connection(address, timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._handshake()

    def _handshake(self) -> None:
        from protocol import HandshakeAccepted, HandshakeRejected

        self.sock.sendall(self.conn.initiate())
        while True:
            event = self._event()
            if isinstance(event, HandshakeAccepted):
                return
            if isinstance(event, HandshakeRejected) and event.retry_version is not None:
                self.sock.sendall(self.conn.initiate())
                continue
            raise RuntimeError(f"handshake failed: {event}")

    def _event(self) -> Any:
        from protocol import NEED_DATA

        while (event := self.conn.next_event()) is NEED_DATA:
            data = self.sock.recv(65536)
            self.conn.receive_data(data)
            if not data:
                raise ConnectionError("the node closed the connection")
        return event

    def get(self, cache: int, key: Any) -> Any:
        from protocol import OpCode, Response, ops

        _, data = self.conn.send_request(OpCode.CACHE_GET, ops.cache_get(cache, key))
        self.sock.sendall(data)
        event = self._event()
        if not isinstance(event, Response):
            raise RuntimeError(f"cache_get failed: {event}")
        return ops.parse_value(event.body)

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def raw_ignite_rung(address: tuple[str, int]) -> Iterator[Callable[[], Any]]:
    from protocol import cache_id

    raw = RawIgnite(address)
    cid = cache_id(KV_CACHE)
    try:
        if raw.get(cid, KEY) != VALUE:
            raise RuntimeError("raw get: bench-kv is not preloaded")
        yield lambda: raw.get(cid, KEY)
    finally:
        raw.close()


@contextlib.contextmanager
def client_rung(lib_name: str, target: Target) -> Iterator[Callable[[], Any]]:
    client = Lib(lib_name).connect(target)
    try:
        cache = client.get_cache(KV_CACHE)
        if cache.get(KEY) != VALUE:
            raise RuntimeError(f"{lib_name} get: bench-kv is not preloaded")
        yield lambda: cache.get(KEY)
    finally:
        client.close()


def rungs(address: tuple[str, int], endpoint: str, stream_endpoint: str,
          ctx: Any) -> list[tuple[str, str, Any]]:
    """(key, title, context manager yielding the round trip) for every rung, in order."""
    get = {"cache": KV_CACHE, "key": KEY}
    optional = []
    if importlib.util.find_spec("uvloop") is not None:
        optional.append(("echo_uvloop", "ZeroMQ ipc echo, the asyncio server on uvloop",
                         echo_rung(echo_uvloop, ctx)))
    return [
        ("unix_echo", "AF_UNIX SOCK_SEQPACKET echo, blocking (no ZeroMQ)", unix_echo_rung(ctx)),
        ("echo", "ZeroMQ ipc echo, blocking Python server", echo_rung(echo_blocking, ctx)),
        ("echo_asyncio", "ZeroMQ ipc echo, asyncio server (as broker/frontend.py)",
         echo_rung(echo_asyncio, ctx)),
        *optional,
        ("ping", "broker ping, raw DEALER (no stub)", broker_rung(endpoint, "ping", {})),
        ("broker_get", "broker cache_get, raw DEALER (no stub)",
         broker_rung(endpoint, "cache_get", get)),
        ("libclient_get", "libclient Client.get over ipc:// (stub + broker)",
         client_rung("libclient", Target((address,), endpoint))),
        ("ping_stream", "broker ping, raw unix:// stream socket (no stub)",
         broker_rung(stream_endpoint, "ping", {})),
        ("broker_get_stream", "broker cache_get, raw unix:// stream socket (no stub)",
         broker_rung(stream_endpoint, "cache_get", get)),
        ("libclient_get_stream", "libclient Client.get over unix:// (stub + broker)",
         client_rung("libclient", Target((address,), stream_endpoint))),
        ("raw_get", "raw Ignite get: protocol.ClientConnection + socket",
         raw_ignite_rung(address)),
        ("pyignite_get", "pyignite Client.get (direct)",
         client_rung("pyignite", Target((address,), endpoint))),
    ]


def ladder(address: tuple[str, int], endpoint: str, stream_endpoint: str, n: int, ctx: Any,
           rounds: int = 5) -> list[dict[str, Any]]:
    """``n`` sequential round trips per rung, taken in ``rounds`` interleaved slices so that
    a burst of load from elsewhere on the machine hits every rung alike."""
    with contextlib.ExitStack() as stack:
        opened = [(key, title, stack.enter_context(cm))
                  for key, title, cm in rungs(address, endpoint, stream_endpoint, ctx)]
        latencies: dict[str, list[int]] = {key: [] for key, _, _ in opened}
        for _ in range(rounds):
            for key, _, call in opened:
                latencies[key] += timed(call, max(1, n // rounds))
    return ([row(key, title, latencies[key]) for key, title, _ in opened]
            + placed_rows(ctx, n))


# -- the broker at saturation ---------------------------------------------------------------------


def pipelined_load(endpoint: str, sockets: int, depth: int, start_at: float, seconds: float,
                   conn: Any) -> None:
    """Pipelined raw cache_gets on either transport (a child process)."""
    from protocol.ipcstream import is_stream_endpoint

    load = _pipelined_stream if is_stream_endpoint(endpoint) else _pipelined_zmq
    conn.send(load(endpoint, sockets, depth, start_at, seconds))


def _saturation_frames(keys: int = 4096) -> list[bytes]:
    """Pre-packed cache_gets of distinct preloaded keys: gets of one key would be shared
    (batching reads each key once per batch, coalesce_reads once in flight), not measured."""
    from protocol import ipc

    return [ipc.pack_request(1, "cache_get", {"cache": KV_CACHE, "key": key})
            for key in range(1, keys + 1)]


def _pipelined_stream(endpoint: str, sockets: int, depth: int, start_at: float,
                      seconds: float) -> tuple[int, int]:
    """``depth`` requests in flight on each of ``sockets`` stream connections; each reply is
    answered with a new request.  The same pre-packed request and reply check as over ZeroMQ."""
    import selectors

    from protocol import ipc
    from protocol.ipcstream import frame

    requests = itertools.cycle([frame(f) for f in _saturation_frames()])
    ok = ipc.pack_reply(1, 0, None)[:4]
    clients = [StreamRaw(endpoint) for _ in range(sockets)]
    selector = selectors.DefaultSelector()
    for client in clients:
        client.sock.setblocking(False)
        selector.register(client.sock, selectors.EVENT_READ, client)
        client.sock.sendall(b"".join(next(requests) for _ in range(depth)))
    done = errors = 0
    counting = False
    end = start_at + seconds
    while (now := time.monotonic()) < end:
        if not counting and now >= start_at:
            counting, done, errors = True, 0, 0
        for key, _ in selector.select(0.1):
            client = key.data
            replies = client.reader.feed(client.sock.recv(1 << 18))
            for reply in replies:
                done += 1
                errors += reply[:4] != ok
            client.sock.sendall(b"".join(next(requests) for _ in replies))
    for client in clients:
        client.close()
    return done, errors


def _pipelined_zmq(endpoint: str, sockets: int, depth: int, start_at: float,
                   seconds: float) -> tuple[int, int]:
    """Keep ``depth`` cache_get requests in flight on each of ``sockets`` DEALERs for
    ``seconds`` (a child process).  Kept as cheap as Python allows, so that the broker is the
    bottleneck: one pre-packed frame (every request carries id 1: nothing here needs to tell
    the replies apart) and a byte check of the reply's header instead of unpacking it."""
    import zmq

    from protocol import ipc

    context = zmq.Context()
    socks = [_dealer(endpoint, context) for _ in range(sockets)]
    frames = itertools.cycle(_saturation_frames())
    ok = ipc.pack_reply(1, 0, None)[:4]  # [version 1, id 1, status 0, ...
    poller = zmq.Poller()
    for sock in socks:
        poller.register(sock, zmq.POLLIN)
        for _ in range(depth):
            sock.send(next(frames))
    done = errors = 0
    counting = False
    end = start_at + seconds
    while (now := time.monotonic()) < end:
        if not counting and now >= start_at:
            counting, done, errors = True, 0, 0
        for sock, _ in poller.poll(100):
            while True:
                try:
                    reply = sock.recv(zmq.NOBLOCK, copy=True)
                except zmq.Again:
                    break
                done += 1
                errors += reply[:4] != ok
                sock.send(next(frames))
    for sock in socks:
        sock.close()
    context.term()
    return done, errors


def broker_saturation(broker: Any, seconds: float, ctx: Any, sockets: int = 8, depth: int = 16,
                      during: Callable[[float], None] | None = None,
                      endpoint: str | None = None) -> dict[str, Any]:
    """The broker's CPU per op while it is the bottleneck: pipelined raw gets from one
    process, on ``endpoint`` (default: the broker's stream socket).  ``during(start_at)``
    runs in this process meanwhile (e.g. a profiler)."""
    endpoint = endpoint or broker.stream_endpoint
    from bench.run import cpu_seconds, sleep_until, zmq_threads_cpu

    pid = broker.proc.pid
    start_at = time.monotonic() + 1.0  # the first second warms up, uncounted
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=pipelined_load, daemon=True,
                       args=(endpoint, sockets, depth, start_at, seconds, child))
    proc.start()
    try:
        sleep_until(start_at)
        cpu0, zmq0 = cpu_seconds(pid), zmq_threads_cpu(pid)
        if during is not None:
            during(start_at)
        sleep_until(start_at + seconds)
        cpu1, zmq1 = cpu_seconds(pid), zmq_threads_cpu(pid)
        done, errors = parent.recv() if parent.poll(60) else (0, 0)
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    ops = max(1, done)
    return {"endpoint": endpoint.split(":", 1)[0], "sockets": sockets, "depth": depth,
            "seconds": seconds, "ops": done,
            "errors": errors, "ops_per_s": done / seconds,
            "broker_cpu_us_per_op": (cpu1 - cpu0) * 1e6 / ops,
            "broker_zmq_cpu_us_per_op": (zmq1 - zmq0) * 1e6 / ops,
            "broker_busy": (cpu1 - cpu0) / seconds}


# -- idle stubs -----------------------------------------------------------------------------------


def idle_stub_process(endpoint: str, count: int, conn: Any) -> None:
    """``count`` connections, each its own session (as ``count`` stub processes would be);
    each sends ``hello`` once, then all stay connected and silent until told to stop."""
    from protocol.ipcstream import is_stream_endpoint

    if is_stream_endpoint(endpoint):
        _idle_stream_stubs(endpoint, count, conn)
    else:
        _idle_zmq_stubs(endpoint, count, conn)


def _idle_stream_stubs(endpoint: str, count: int, conn: Any) -> None:
    from protocol import ipc

    clients = []
    for _ in range(count):
        client = StreamRaw(endpoint)
        client.send(ipc.pack_request(1, "hello", {"nodes": []}))
        clients.append(client)
    answered = 0
    for client in clients:
        with contextlib.suppress(OSError):
            answered += ipc.unpack_reply(client.recv()).status == 0
    conn.send(answered)
    conn.recv()  # "stop"
    for client in clients:
        client.close()


def _idle_zmq_stubs(endpoint: str, count: int, conn: Any) -> None:
    import zmq

    from protocol import ipc

    context = zmq.Context()
    socks = []
    for _ in range(count):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        session = bytearray(os.urandom(16))
        session[0] |= 0x80
        sock.setsockopt(zmq.ROUTING_ID, bytes(session) + b"\0\0\0\1")
        sock.connect(endpoint)
        sock.send(ipc.pack_request(1, "hello", {"nodes": []}))
        socks.append(sock)
    answered = sum(1 for sock in socks if sock.poll(30_000) and sock.recv())
    conn.send(answered)
    conn.recv()  # "stop"
    for sock in socks:
        sock.close()
    context.term()


def idle_stubs_rss(broker: Any, stubs: int, ctx: Any, processes: int = 4,
                   endpoint: str | None = None) -> dict[str, Any]:
    """The broker's RSS alone, then with ``stubs`` idle stubs connected to ``endpoint``
    (default: the broker's stream socket)."""
    endpoint = endpoint or broker.stream_endpoint
    pid = broker.proc.pid
    baseline = _rss(pid)
    per = [stubs // processes + (1 if i < stubs % processes else 0) for i in range(processes)]
    pipes, procs = [], []
    try:
        for count in per:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=idle_stub_process, args=(endpoint, count, child),
                               daemon=True)
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        answered = sum(pipe.recv() if pipe.poll(120) else 0 for pipe in pipes)
        time.sleep(1.0)
        stats = broker.admin("show stats")
        return {"endpoint": endpoint.split(":", 1)[0], "stubs": stubs, "answered": answered,
                "workers_seen": stats["workers"],
                "baseline_rss_mb": baseline, "rss_mb": _rss(pid),
                "per_stub_kb": (_rss(pid) - baseline) * 1024 / max(1, answered)}
    finally:
        for pipe in pipes:
            with contextlib.suppress(OSError):
                pipe.send("stop")
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _rss(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# -- stand-alone ----------------------------------------------------------------------------------


def _print(rows: list[dict[str, Any]]) -> None:
    print(f"| {'round trip':58} | p50 µs | p99 µs | mean µs |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']:58} | {r['p50_us']:6.0f} | {r['p99_us']:6.0f} | "
              f"{r['mean_us']:7.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", help="host:port of a node holding bench-kv")
    parser.add_argument("--endpoint", help="the broker's ZeroMQ endpoint (ipc://...)")
    parser.add_argument("--stream-endpoint", help="the broker's stream endpoint (unix://...)")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--base-port", type=int, default=12040)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("forkserver")
    if args.node and args.endpoint and args.stream_endpoint:
        host, port = args.node.rsplit(":", 1)
        _print(ladder((host, int(port)), args.endpoint, args.stream_endpoint, args.n, ctx))
        return 0
    from bench.run import Settings, environment

    settings = Settings(mode="floor", plan={1: {}}, duration=0, reps=0, connections_per_node=1,
                        base_port=args.base_port, profile_s=0, idle_stubs=0, floor_n=args.n,
                        import_runs=0)
    with environment(1, args.base_port, settings) as env:
        _print(ladder(env.target.addresses[0], env.broker.endpoint, env.broker.stream_endpoint,
                      args.n, ctx))
    return 0


if __name__ == "__main__":
    sys.exit(main())
