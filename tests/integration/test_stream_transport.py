"""The unix:// stream transport against a real broker and a real node: length-prefixed msgpack
on a Unix socket.  Bad input gets a clear error and the same connection keeps working, a
hostile connection harms nobody else, pipelined requests are all answered, a closed
connection releases its worker's locks at once, and the sync stub's stream channel is
thread-, fork- and restart-safe."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
import socket
import stat
import struct
import time
import uuid

import msgpack
import pytest

from broker.devcluster.brokerproc import BrokerProcess, running_broker
from libclient import Client
from libclient.exceptions import BrokerUnavailable
from protocol import ipc
from protocol.ipcstream import frame, stream_path
from tests.integration.rawipc import Stream

pytestmark = pytest.mark.integration

MAX_REQUEST = 65536
# Far above what the tests allow for a lock's release: a stream worker's session ends when its
# connection does, not when it has been silent for the liveness bound.
LIVENESS = 10.0
PESSIMISTIC, REPEATABLE_READ = 1, 1
STREAM_IDENTITY_HEX = b"\x00stream".hex()


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory):
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("stream"),
                        {"limits.max_request_bytes": MAX_REQUEST,
                         "limits.worker_liveness": LIVENESS}) as proc:
        yield proc


@pytest.fixture
def stream(broker):
    client = Stream(broker.stream_endpoint)
    yield client
    client.close()


def _still_works(client: Stream) -> None:
    rid = next(client.ids)
    reply = client.ask(ipc.pack_request(rid, "ping", {}))
    assert (reply.request_id, reply.status) == (rid, ipc.Status.OK)


def _put_of_size(size: int, cache: str = "stream-size") -> bytes:
    """A valid cache_put request whose msgpack is exactly ``size`` bytes."""
    guess = size - 100  # the bin header has the same width for both lengths
    base = len(ipc.pack_request(7, "cache_put", {"cache": cache, "key": "k",
                                                  "value": b"x" * guess}))
    message = ipc.pack_request(7, "cache_put", {"cache": cache, "key": "k",
                                                "value": b"x" * (guess + size - base)})
    assert len(message) == size
    return message


# -- bad input on the stream, the same connection keeps working ------------------------------


@pytest.mark.parametrize("message, status, text", [
    (b"\xc1\x00garbage", ipc.Status.BAD_REQUEST, "malformed msgpack"),
    (b"", ipc.Status.BAD_REQUEST, "malformed msgpack"),
    (ipc.pack_request(1, "ping", {}) + b"\x00", ipc.Status.BAD_REQUEST, "malformed msgpack"),
    (msgpack.packb({"not": "a list"}), ipc.Status.BAD_REQUEST, "5-element"),
    (msgpack.packb([1, 2, "ping", 0]), ipc.Status.BAD_REQUEST, "5-element"),
    (msgpack.packb([1, -1, "ping", 0, {}]), ipc.Status.BAD_REQUEST, "request id"),
    (msgpack.packb([1, 2, 17, 0, {}]), ipc.Status.BAD_REQUEST, "op must be a string"),
    (msgpack.packb([1, 2, "ping", "soon", {}]), ipc.Status.BAD_REQUEST, "deadline_ms"),
    (msgpack.packb([1, 2, "ping", 0, [1, 2]]), ipc.Status.BAD_REQUEST, "args must be a map"),
    (ipc.pack_request(1, "cache_get", {"cache": 5.5, "key": 1}), ipc.Status.BAD_REQUEST,
     "wrong type"),
    (ipc.pack_request(1, "cache_get", {"cache": "c"}), ipc.Status.BAD_REQUEST, "missing"),
    (ipc.pack_request(1, "drop_everything", {}), ipc.Status.UNKNOWN_OP, "unknown op"),
    (msgpack.packb([99, 4, "ping", 0, {}]), ipc.Status.UNSUPPORTED_VERSION, "version 99"),
    (ipc.pack_request(1, "cache_put", {"cache": "c", "key": 2**64 - 1, "value": 1}),
     ipc.Status.BAD_REQUEST, "encode"),
    (ipc.pack_request(1, "ping", {}, deadline_ms=1), ipc.Status.DEADLINE_EXCEEDED, "deadline"),
])
def test_bad_requests_get_clear_errors_and_the_connection_lives_on(stream, message, status,
                                                                      text):
    reply = stream.ask(message)
    assert reply.status == status, reply
    assert text in reply.payload["message"]
    _still_works(stream)
    # ... twice in a row on the same connection, then a real cache round trip.
    assert stream.ask(message).status == status
    cache = f"stream-bad-{uuid.uuid4().hex[:6]}"
    stream.call("cache_get_or_create", name=cache)
    stream.call("cache_put", cache=cache, key="k", value="still fine")
    assert stream.call("cache_get", cache=cache, key="k") == "still fine"


def test_the_request_size_limit_is_exact(stream):
    stream.call("cache_get_or_create", name="stream-size")
    reply = stream.ask(_put_of_size(MAX_REQUEST))
    assert (reply.request_id, reply.status) == (7, ipc.Status.OK), reply
    reply = stream.ask(_put_of_size(MAX_REQUEST + 1))
    assert (reply.request_id, reply.status) == (0, ipc.Status.TOO_LARGE), reply
    assert "exceeds" in reply.payload["message"]
    _still_works(stream)


def test_too_large_is_answered_at_the_header_and_its_bytes_skipped(stream):
    big = _put_of_size(200_000)
    data = frame(big)
    stream.send_bytes(data[:100])  # the header and a little: the answer comes now
    reply = stream.recv()
    assert (reply.request_id, reply.status) == (0, ipc.Status.TOO_LARGE), reply
    assert "200000 bytes" in reply.payload["message"]
    # The rest dribbles in; nothing of it is taken for a request.
    for i in range(100, len(data), 30_000):
        stream.send_bytes(data[i:i + 30_000])
    _still_works(stream)
    # And an oversized frame followed by a good one in a single write.
    rid = next(stream.ids)
    stream.send_bytes(frame(big) + frame(ipc.pack_request(rid, "ping", {})))
    first, second = stream.recv(), stream.recv()
    assert first.status == ipc.Status.TOO_LARGE
    assert (second.request_id, second.status) == (rid, ipc.Status.OK)


def test_pipelined_requests_in_one_write_are_all_answered(stream):
    cache = f"stream-pipe-{uuid.uuid4().hex[:6]}"
    stream.call("cache_get_or_create", name=cache)
    stream.call("cache_put_all", cache=cache, pairs=[[i, f"v{i}"] for i in range(300)])
    expected: dict[int, tuple[int, object]] = {}
    data = bytearray()
    for i in range(300):
        rid = 10_000 + i
        if i % 50 == 49:
            data += frame(b"\xc1")  # a malformed one in the middle is answered with id 0
            expected.setdefault(0, (ipc.Status.BAD_REQUEST, None))
        data += frame(ipc.pack_request(rid, "cache_get", {"cache": cache, "key": i}))
        expected[rid] = (ipc.Status.OK, f"v{i}")
    stream.send_bytes(bytes(data))
    answers: dict[int, list] = {}
    for _ in range(300 + 6):
        reply = stream.recv()
        answers.setdefault(reply.request_id, []).append(reply)
    assert sorted(answers) == sorted(expected)
    assert [r.status for r in answers.pop(0)] == [ipc.Status.BAD_REQUEST] * 6
    for rid, replies in answers.items():
        assert len(replies) == 1
        assert (replies[0].status, replies[0].payload) == expected[rid]
    _still_works(stream)


def test_a_burst_beyond_the_in_flight_limit_waits_instead_of_failing(stream):
    """3,000 requests in one write, against max_in_flight_per_worker = 1024: the broker stops
    reading the connection while 1,024 are in flight, so none is refused as OVERLOADED."""
    cache = f"stream-burst-{uuid.uuid4().hex[:6]}"
    stream.call("cache_get_or_create", name=cache)
    stream.call("cache_put_all", cache=cache, pairs=[[i, i * 3] for i in range(100)])
    count = 3000
    stream.send_bytes(b"".join(
        frame(ipc.pack_request(20_000 + i, "cache_get", {"cache": cache, "key": i % 100}))
        for i in range(count)))
    replies = [stream.recv() for _ in range(count)]
    assert sorted(r.request_id for r in replies) == [20_000 + i for i in range(count)]
    assert {r.status for r in replies} == {ipc.Status.OK}
    assert all(r.payload == (r.request_id - 20_000) % 100 * 3 for r in replies)
    _still_works(stream)


def test_the_socket_file_is_group_accessible_only(broker):
    path = stream_path(broker.stream_endpoint)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o750


def test_replies_of_megabytes_arrive_whole(stream):
    cache = f"stream-big-{uuid.uuid4().hex[:6]}"
    stream.call("cache_get_or_create", name=cache)
    values = {i: bytes([i]) * 60_000 for i in range(40)}
    for i, value in values.items():
        stream.call("cache_put", cache=cache, key=i, value=value)
    got = stream.call("cache_get_all", cache=cache, keys=list(values))  # ~2.4 MB reply
    assert dict(got) == values
    _still_works(stream)


# -- hostile connections harm nobody else ------------------------------------------------------


def _connect(broker) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(stream_path(broker.stream_endpoint))
    return sock


def test_garbage_then_hang_up_harms_no_other_worker(broker, stream):
    cache = f"stream-victim-{uuid.uuid4().hex[:6]}"
    stream.call("cache_get_or_create", name=cache)
    zmq_client = Client(broker=broker.endpoint)
    zmq_client.connect()
    neighbour = zmq_client.get_cache(cache)
    rng = random.Random(1234)
    offences = [
        lambda: rng.randbytes(4096),  # random bytes: random lengths, some oversized
        lambda: struct.pack(">I", 1 << 30) + b"x" * 1000,  # a 1 GiB frame, cut short
        lambda: b"\x00\x00",  # half a header
        lambda: frame(b"\xc1\xc1") * 50,  # many malformed ones whose replies nobody reads
        lambda: frame(ipc.pack_request(1, "cache_put",  # a write, gone before its reply
                                       {"cache": cache, "key": "abandoned", "value": 1})),
        lambda: struct.pack(">I", 50) + b"partial message",
    ]
    try:
        for round_ in range(3):
            for n, offence in enumerate(offences):
                bad = _connect(broker)
                bad.sendall(offence())
                if n % 2:
                    bad.shutdown(socket.SHUT_RDWR)
                bad.close()
                key = f"r{round_}o{n}"
                stream.call("cache_put", cache=cache, key=key, value=f"{key} ✓")
                assert stream.call("cache_get", cache=cache, key=key) == f"{key} ✓"
                assert neighbour.get(key) == f"{key} ✓"
        _still_works(stream)
        assert broker.proc is not None and broker.proc.poll() is None
        stats = broker.admin("show stats")
        assert stats["rejected"] >= 1 and stats["in_flight"] == 0
        assert broker.admin("show nodes")[0]["state"] == "ready"
        # A new stream connection after all that is served as well.
        fresh = Stream(broker.stream_endpoint)
        try:
            assert fresh.call("cache_get", cache=cache, key="r2o0") == "r2o0 ✓"
        finally:
            fresh.close()
    finally:
        zmq_client.close()


# -- a closed connection releases its worker at once -------------------------------------------


def _hold_lock_then_hang(endpoint: str, cache: str, ready) -> None:
    client = Stream(endpoint)
    tx = client.call("tx_start", concurrency=PESSIMISTIC, isolation=REPEATABLE_READ)
    client.call("cache_put", cache=cache, key="locked", value="by the dead worker", tx=tx)
    ready.set()
    time.sleep(3600)


def _tx_cache(client: Stream) -> str:
    name = f"stream-tx-{uuid.uuid4().hex[:8]}"
    client.call("cache_get_or_create", config={0: name, 2: 0})  # atomicity TRANSACTIONAL
    return name


def _take_the_lock(client: Stream, cache: str, value: str) -> float:
    """Seconds until a PESSIMISTIC put on the locked key went through (then committed)."""
    started = time.monotonic()
    tx = client.call("tx_start", concurrency=PESSIMISTIC, isolation=REPEATABLE_READ,
                     timeout=15000)
    client.call("cache_put", cache=cache, key="locked", value=value, tx=tx)
    waited = time.monotonic() - started
    client.call("tx_end", tx=tx, commit=True)
    assert client.call("cache_get", cache=cache, key="locked") == value
    return waited


def test_sigkilled_stream_worker_releases_its_lock_at_once(stream, broker):
    cache = _tx_cache(stream)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    victim = ctx.Process(target=_hold_lock_then_hang,
                         args=(broker.stream_endpoint, cache, ready))
    victim.start()
    try:
        assert ready.wait(60)
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.join()
    waited = _take_the_lock(stream, cache, "by the survivor")
    assert waited < 2.0, (
        f"the lock of a SIGKILLed stream worker was released only after {waited:.1f}s "
        f"(liveness bound {LIVENESS}s): the closed connection did not end its session")
    time.sleep(0.1)
    released = [line for line in broker.log().splitlines() if "worker_released" in line]
    assert any(STREAM_IDENTITY_HEX in line for line in released), released


def test_closing_the_connection_releases_transactions_and_cursors(stream, broker):
    cache = _tx_cache(stream)
    stream.call("cache_put_all", cache=cache, pairs=[[i, i] for i in range(20)])
    before = broker.admin("show stats")
    owner = Stream(broker.stream_endpoint)
    tx = owner.call("tx_start", concurrency=PESSIMISTIC, isolation=REPEATABLE_READ)
    owner.call("cache_put", cache=cache, key="locked", value="by the closed worker", tx=tx)
    page = owner.call("scan", cache=cache, page_size=2)
    assert page["more"] and page["cursor"] is not None
    owner.close()  # a clean close, no kill
    waited = _take_the_lock(stream, cache, "after the close")
    assert waited < 2.0, f"the lock was released only after {waited:.1f}s"
    deadline = time.monotonic() + 5
    while True:
        after = broker.admin("show stats")
        if (after["released_cursors"] > before["released_cursors"]
                or time.monotonic() > deadline):
            break
        time.sleep(0.05)
    assert after["released_transactions"] == before["released_transactions"] + 1
    assert after["released_cursors"] == before["released_cursors"] + 1


# -- the sync stub over unix:// ---------------------------------------------------------------


@pytest.fixture
def client(broker):
    c = Client(broker=broker.stream_endpoint)
    c.connect()
    yield c
    c.close()


def test_stream_client_reads_megabytes_and_a_scan_cursor(client):
    cache = client.get_or_create_cache(f"stream-lc-big-{uuid.uuid4().hex[:6]}")
    values = {f"k{i}": str(i) * 20_000 for i in range(60)}
    for key, value in values.items():
        cache.put(key, value)
    assert cache.get_all(list(values)) == values  # one reply of ~1.7 MB
    assert dict(cache.scan(page_size=7)) == values
    cache.destroy()


def test_stream_client_survives_a_broker_restart(ignite_node, tmp_path_factory):
    proc = BrokerProcess(ignite_node.addresses,
                         workdir=tmp_path_factory.mktemp("stream-restart"))
    proc.start()
    client = Client(broker=proc.stream_endpoint, timeout=1.5)
    try:
        client.connect()
        cache = client.get_or_create_cache(f"stream-restart-{uuid.uuid4().hex[:6]}")
        cache.put("k", "before the restart")
        assert proc.proc is not None
        os.kill(proc.proc.pid, signal.SIGKILL)  # leaves its socket file behind
        proc.proc.wait()
        assert os.path.exists(stream_path(proc.stream_endpoint))
        proc.start()
        # The connection of the first broker is dead; a read opens a new one.
        assert cache.get("k") == "before the restart"

        assert proc.stop() == 0
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="was not sent") as exc:
            cache.put("k", "while the broker is down")
        assert exc.value.maybe_applied is False
        assert time.monotonic() - started < 1.5 + 1.0

        proc.start()
        assert cache.get("k") == "before the restart"
        cache.put("k", "after the restart")
        assert cache.get("k") == "after the restart"
        cache.destroy()
    finally:
        client.close()
        proc.stop()
        print(proc.log())


def test_a_second_broker_does_not_take_over_a_live_unix_socket(ignite_node, tmp_path_factory):
    """Two brokers with the same unix://-only configuration: the second must not unlink the
    first one's live socket and bind its own (a broker with no ipc:// endpoint has no default
    lock file, and _listen_unix removes whatever file is at the path)."""
    endpoint = f"unix://{tmp_path_factory.mktemp('stream-only')}/run/broker.stream"
    settings = {"broker.endpoints": [endpoint]}
    first = BrokerProcess(ignite_node.addresses, settings=settings,
                          workdir=tmp_path_factory.mktemp("stream-first"))
    second = BrokerProcess(ignite_node.addresses, settings=settings,
                           workdir=tmp_path_factory.mktemp("stream-second"))
    first.endpoint = second.endpoint = endpoint  # readiness checked over the stream socket
    first.start()
    held = Stream(endpoint)
    try:
        assert first.proc is not None
        assert held.call("hello")["pid"] == first.proc.pid
        with contextlib.suppress(RuntimeError):  # "broker exited with ..." is the good outcome
            second.start()
        assert second.proc is not None
        deadline = time.monotonic() + 10
        while second.proc.poll() is None and time.monotonic() < deadline:
            fresh = Stream(endpoint)
            try:
                served_by = fresh.call("hello")["pid"]
            finally:
                fresh.close()
            assert served_by == first.proc.pid, (
                f"PRODUCT BUG: a second broker (pid {served_by}) took over the live socket "
                f"{endpoint} of the running broker (pid {first.proc.pid}): with only unix:// "
                "endpoints there is no single-instance lock, and _listen_unix unlinks the path")
            time.sleep(0.2)
        assert second.proc.poll() not in (None, 0), "the second broker should refuse to start"
        assert held.call("hello")["pid"] == first.proc.pid
    finally:
        held.close()
        second.stop()
        first.stop()
        print(first.log(), second.log())
