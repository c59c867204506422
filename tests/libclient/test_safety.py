"""Fork safety, thread safety and broker restarts, against a fake broker in its own process
(so it can crash and come back)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from libclient import Client
from libclient.exceptions import BrokerUnavailable, CacheError


@pytest.fixture
def broker(fake_process):
    return fake_process().start()


def _check_own_keys(cache, tag: str, n: int) -> list[str]:
    for i in range(n):
        cache.put(f"{tag}:{i}", f"{tag} value {i}")
    return [f"{tag}:{i}" for i in range(n) if cache.get(f"{tag}:{i}") != f"{tag} value {i}"]


def test_a_client_made_before_fork_works_in_parent_and_children(broker):
    client = Client(broker=broker.endpoint)
    client.connect()
    cache = client.get_or_create_cache("fork")
    cache.put("before", "fork")  # the parent's socket exists and is in use
    pids = []
    for child in range(8):
        pid = os.fork()
        if pid == 0:  # child: the inherited client, on its own new socket
            code = 1
            try:
                wrong = _check_own_keys(cache, f"child{child}", 100)
                code = 0 if not wrong and cache.get("before") == "fork" else 2
            finally:
                os._exit(code)
        pids.append(pid)
        assert not _check_own_keys(cache, f"parent{child}", 20)  # interleaved with children
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    assert codes == [0] * 8
    for child in range(8):
        assert cache.get(f"child{child}:99") == f"child{child} value 99"
    client.close()


def test_cursors_and_transactions_do_not_cross_fork(broker):
    client = Client(broker=broker.endpoint)
    client.connect()
    cursor = client.sql("SELECT x 10", page_size=2)
    tx = client.tx_start()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        outcome = b"?"
        try:
            try:
                list(cursor)
            except CacheError as exc:
                outcome = b"1" if "does not survive fork" in str(exc) else b"0"
            cache = client.get_or_create_cache("fork2")
            cache.put(1, 1)  # the parent's transaction is not current here
            outcome += b"1" if cache.get(1) == 1 else b"0"
        finally:
            os.write(write, outcome)
            os._exit(0)
    os.waitpid(pid, 0)
    outcome = os.read(read, 8)
    os.close(read)
    os.close(write)
    assert outcome == b"11"
    assert len(list(cursor)) == 10
    tx.rollback()
    client.close()


def test_32_threads_share_one_client(broker):
    client = Client(broker=broker.endpoint)
    client.connect()
    cache = client.get_or_create_cache("threads")
    errors: list = []
    channels: set[int] = set()
    start = threading.Barrier(32)

    def work(n: int) -> None:
        try:
            start.wait()
            channels.add(id(client._transport.channel()))
            wrong = _check_own_keys(cache, f"t{n}", 100)
            if wrong:
                errors.append((n, wrong[:3]))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append((n, repr(exc)))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(channels) == 32  # one socket per thread...
    assert len(client._transport._channels) == 1  # ...closed when its thread ended
    client.close()


def test_reads_survive_a_broker_restart(fake_process, endpoint):
    first = fake_process().start()
    client = Client(broker=endpoint, timeout=10)
    client.connect()
    cache = client.get_or_create_cache("restart")
    assert cache.get("k") is None
    first.kill()
    result: list = []
    reader = threading.Thread(target=lambda: result.append(client.get_cache_names()))
    reader.start()
    time.sleep(0.5)
    fake_process().start()  # a new broker on the same endpoint
    reader.join(10)
    assert result == [[]]  # answered by the new broker: the read was re-sent
    client.close()


def test_a_write_in_flight_when_the_broker_dies_may_have_been_applied(fake_process, endpoint):
    broker = fake_process(silent_ops="cache_put").start()
    client = Client(broker=endpoint, timeout=60)
    client.connect()
    cache = client.get_cache("c")
    threading.Timer(0.3, broker.kill).start()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="may have been applied") as exc:
        cache.put(1, 1)
    assert exc.value.maybe_applied is True
    assert time.monotonic() - started < 30  # detected at once, not after the 60 s timeout
    client.close()


def test_a_write_with_no_broker_was_not_applied(fake_process, endpoint):
    broker = fake_process().start()
    client = Client(broker=endpoint, timeout=0.5)
    client.connect()
    broker.kill()
    time.sleep(0.2)  # let libzmq's I/O thread see the end of the connection (else: a race)
    with pytest.raises(BrokerUnavailable, match="was not sent") as exc:
        client.get_cache("c").put(1, 1)
    assert exc.value.maybe_applied is False
    client.close()


def test_connection_events_on_loss_and_return(fake_process, endpoint):
    from libclient.monitoring import ConnectionEventListener

    events: list[str] = []

    class Listener(ConnectionEventListener):
        def on_connection_lost(self, event):
            events.append("lost")

        def on_handshake_success(self, event):
            events.append("up")

    first = fake_process(silent_ops="cache_get").start()
    client = Client(broker=endpoint, timeout=5, event_listeners=[Listener()])
    client.connect()
    restart_errors: list[BaseException] = []

    def crash_then_restart() -> None:  # in this order even when timers fire late under load
        time.sleep(0.2)
        first.kill()
        time.sleep(0.4)
        try:
            fake_process().start()
        except BaseException as exc:  # reported in the test's thread below
            restart_errors.append(exc)

    restarter = threading.Thread(target=crash_then_restart)
    restarter.start()
    assert client.get_cache_names() is not None
    client.get_cache("x")
    with pytest.raises(CacheError):
        client.get_cache("x").get(1)  # answered by the new broker
    restarter.join()
    assert restart_errors == []
    assert events == ["up", "lost", "up"]
    client.close()


def test_routing_ids_share_a_session_per_process(broker):
    from libclient.envelope import routing_id
    from protocol.ipc import SESSION_BYTES

    first, second = routing_id(), routing_id()
    assert first[:SESSION_BYTES] == second[:SESSION_BYTES] and first != second
    assert first[0] != 0  # a leading zero byte is reserved by ZeroMQ
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, routing_id())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64)
    os.close(read)
    os.close(write)
    assert child[:SESSION_BYTES] != first[:SESSION_BYTES]
