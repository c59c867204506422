"""A stopping broker's word (issue 11): NOT_PROCESSED for one request, GOING_AWAY as a stream's
last message (every request without a reply was not processed) or, on ZeroMQ, as "send nothing
more on this socket".  The core's rules, then the sync and asyncio drivers on both transports
against a fake broker that stops and a new one on the same endpoint."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pytest

from libclient import AioClient, Client
from libclient.calls import Call
from libclient.core import TO_SEND, Exchange, not_processed
from libclient.exceptions import BrokerUnavailable
from protocol import ipc
from tests.libclient.fakebroker import FakeBroker


def _reply(request_id: int, status: int, payload=None) -> ipc.Reply:
    return ipc.unpack_reply(ipc.pack_reply(request_id, status, payload))


def _exchange(call: Call, budget: float = 10.0, now: float = 100.0) -> Exchange:
    return Exchange(call, "unix:///x", now, now + budget, retries=5)


# -- the core ---------------------------------------------------------------------------------

def test_which_replies_say_not_processed():
    said = ipc.not_processed_payload()
    assert not_processed(_reply(1, ipc.Status.NOT_PROCESSED, said))
    assert not_processed(_reply(0, ipc.Status.GOING_AWAY, said))
    # an older broker's "shutting down" was never processed either
    assert not_processed(_reply(1, ipc.Status.CLUSTER_UNAVAILABLE, ipc.error_payload(
        "shutting_down", "the broker is shutting down", maybe_applied=False)))
    assert not not_processed(_reply(1, ipc.Status.CLUSTER_UNAVAILABLE, ipc.error_payload(
        "cluster_unavailable", "no node", maybe_applied=True)))
    assert not not_processed(_reply(1, ipc.Status.OK, None))
    assert said["maybe_applied"] is False and said["kind"] == "not_processed"


def test_a_write_not_processed_goes_back_to_be_sent_again():
    exchange = _exchange(Call("cache_put", {"key": 1, "value": 1}, idempotent=False))
    for _ in range(3):
        exchange.sent()
        exchange.not_processed()
        assert exchange.state is TO_SEND
    assert exchange.unprocessed == 3
    assert exchange.resends == 0  # a read's re-sends after a lost connection are not spent


class _Hold:
    def __init__(self, established: bool) -> None:
        self.established = established


def test_a_pinned_call_not_processed_fails_not_applied():
    exchange = _exchange(Call("cache_put", {"tx": 7}, idempotent=False, hold=_Hold(True)))
    exchange.sent()
    with pytest.raises(BrokerUnavailable, match="did not process cache_put") as exc:
        exchange.not_processed()
    assert exc.value.maybe_applied is False


def test_the_call_that_opens_a_cursor_or_transaction_is_sent_again_when_not_processed():
    """Nothing lives on the stopping broker yet: tx_start and a query's first page go to the
    next broker like any other request (the restart target's failed sql and tx_start)."""
    for op in ("tx_start", "sql"):
        exchange = _exchange(Call(op, {}, idempotent=False, hold=_Hold(False)))
        exchange.sent()
        exchange.not_processed()
        assert exchange.state is TO_SEND and exchange.unprocessed == 1


def test_going_away_answers_a_request_only_where_the_driver_says():
    exchange = _exchange(Call("cache_get", {"key": 1}, idempotent=True))
    going = ipc.pack_reply(ipc.GOING_AWAY_REQUEST_ID, ipc.Status.GOING_AWAY,
                           ipc.not_processed_payload())
    assert exchange.match(going) is None  # ZeroMQ: a hint for the next request
    assert exchange.match(going, going_away=True).status == ipc.Status.GOING_AWAY  # a stream
    other = ipc.pack_reply(exchange.request_id + 1, ipc.Status.OK, None)
    assert exchange.match(other, going_away=True) is None


def test_resend_delays_back_off_within_the_deadline():
    exchange = _exchange(Call("cache_get", {}, idempotent=True), budget=0.02, now=100.0)
    delays = [exchange.resend_delay(100.0) for _ in range(4)]
    assert delays[0] > 0 and delays == sorted(delays)
    assert max(delays) <= 0.02
    assert exchange.resend_delay(200.0) == 0.0  # past the deadline: send now, and fail then


# -- the drivers ------------------------------------------------------------------------------

class StoppingBroker(FakeBroker):
    """Serves normally until ``stopping`` is set; then, as the broker does, takes no new
    connection (ZeroMQ: its socket file goes; a stream: its listener closes) and answers
    every request NOT_PROCESSED (ZeroMQ) or, on a stream, GOING_AWAY and the end of its side
    of the connection (what comes after is dropped); ``told`` counts the stubs' requests so
    answered."""

    def __init__(self, endpoint: str, store: dict) -> None:
        super().__init__(endpoint, store=store)
        self.stopping = threading.Event()
        self.told = 0
        self.not_processed: list[str] = []
        self._said_goodbye: set[bytes] = set()

    def _serve_one(self, peer: bytes, frame: bytes) -> None:
        if not self.stopping.is_set():
            super()._serve_one(peer, frame)
            return
        if not self.not_processed:
            self._take_no_new_connection()
        request = ipc.unpack_request(frame)
        self.not_processed.append(request.op)
        if not self.endpoint.startswith("unix://"):
            self._wire.send(peer, ipc.pack_reply(request.request_id, ipc.Status.NOT_PROCESSED,
                                                 ipc.not_processed_payload()))
        elif peer not in self._said_goodbye:
            self._said_goodbye.add(peer)
            self._wire.send(peer, ipc.pack_reply(ipc.GOING_AWAY_REQUEST_ID,
                                                 ipc.Status.GOING_AWAY,
                                                 ipc.not_processed_payload()))
            self._wire.conns[peer][0].shutdown(socket.SHUT_WR)
        self.told += 1

    def _take_no_new_connection(self) -> None:
        wire = self._wire
        if self.endpoint.startswith("unix://"):
            wire.poller.unregister(wire.listener)
            wire.listener.close()
        else:
            os.unlink(self.endpoint[len("ipc://"):])

    def go_away_to(self, peer: bytes) -> None:
        """ZeroMQ: tell an idle peer GOING_AWAY (from the broker's own thread)."""
        self._later.append((0.0, peer, ipc.pack_reply(
            ipc.GOING_AWAY_REQUEST_ID, ipc.Status.GOING_AWAY, ipc.not_processed_payload())))


class Restart:
    """The stopping broker, and in a thread, once it has told the stub about ``requests``
    requests (a stream: about its connection): its end and a new broker on the same endpoint
    with the same data."""

    def __init__(self, endpoint: str) -> None:
        self.store: dict = {}
        self.old = StoppingBroker(endpoint, self.store)
        self.new: FakeBroker | None = None
        self._thread = threading.Thread(target=self._restart, daemon=True)
        self._told = 1

    def begin(self, requests: int = 1) -> None:
        if not self.old.endpoint.startswith("unix://"):
            self._told = requests
        self.old.stopping.set()
        self._thread.start()

    def _restart(self) -> None:
        for _ in range(2000):
            if self.old.told >= self._told:
                break
            time.sleep(0.01)
        self.old.stop()
        self.new = FakeBroker(self.old.endpoint, store=self.store)

    def next_broker(self) -> FakeBroker:
        """The new broker (it may serve before the thread that made it names it)."""
        self._thread.join(20)
        assert self.new is not None
        return self.new

    def close(self) -> None:
        self._thread.join(20)
        self.old.stop()
        if self.new is not None:
            self.new.stop()


@pytest.fixture
def restart(endpoint):
    r = Restart(endpoint)
    yield r
    r.close()


def test_sync_write_not_processed_is_sent_to_the_next_broker(restart):
    client = Client(broker=restart.old.endpoint, timeout=20)
    client.connect()
    cache = client.get_or_create_cache("c")
    restart.begin()
    cache.put("k", "v")  # a write: acknowledged by the next broker, not "may have been applied"
    assert restart.old.not_processed == ["cache_put"]
    assert restart.next_broker().ops().count("cache_put") == 1
    assert cache.get("k") == "v"
    client.close()


def test_aio_requests_not_processed_are_sent_to_the_next_broker(restart):
    async def main() -> None:
        client = AioClient(broker=restart.old.endpoint)
        async with client.connect():
            cache = await client.get_or_create_cache("c")
            restart.begin(requests=20)
            await asyncio.gather(*(cache.put(f"k{i}", i, timeout=20) for i in range(20)))
            new = await asyncio.to_thread(restart.next_broker)
            assert new.ops().count("cache_put") == 20  # each exactly once
            assert await cache.get_all([f"k{i}" for i in range(20)]) == {
                f"k{i}": i for i in range(20)}
            assert "cache_put" in restart.old.not_processed

    asyncio.run(asyncio.wait_for(main(), 30))


class LingeringBroker(StoppingBroker):
    """Stopping, as the broker does for a worker with an open transaction: what names one of
    the socket's transactions is served, anything else answered NOT_PROCESSED (both
    transports: the socket stays open for the transaction)."""

    def _serve_one(self, peer: bytes, frame: bytes) -> None:
        request = ipc.unpack_request(frame)
        tx = self.txs.get(request.args.get("tx"))  # type: ignore[arg-type]
        if not self.stopping.is_set() or (tx is not None and tx[0] == peer):
            FakeBroker._serve_one(self, peer, frame)
            return
        if not self.not_processed:
            self._take_no_new_connection()
        self.not_processed.append(request.op)
        self.requests.append((peer, request.op, request.args))
        self._wire.send(peer, ipc.pack_reply(request.request_id, ipc.Status.NOT_PROCESSED,
                                             ipc.not_processed_payload()))
        self.told += 1


def test_sync_a_transaction_stays_with_its_broker_while_other_requests_move(endpoint):
    """The stopping broker serves the open transaction; the same thread's other requests go
    to the next broker meanwhile, on a new connection (as in an in-place upgrade)."""
    store: dict = {}
    old = LingeringBroker(endpoint, store)
    new: list[FakeBroker] = []
    try:
        client = Client(broker=endpoint, timeout=20)
        client.connect()
        cache = client.get_or_create_cache("c")
        with client.tx_start() as tx:
            cache.put("a", 1)
            old.stopping.set()
            starter = threading.Thread(target=lambda: (
                _until_told(old), new.append(FakeBroker(endpoint, store=store))))
            starter.start()
            assert "c" in client.get_cache_names()  # not processed by the old: to the new one
            starter.join(20)
            cache.put("b", 2)  # the transaction's: on its own connection, to the old broker
            tx.commit()
        assert old.not_processed == ["cache_names"]
        assert old.ops()[-4:] == ["cache_put", "cache_names", "cache_put", "tx_end"]
        assert new[0].ops() == ["cache_names"]  # nothing of the transaction
        assert cache.get_all(["a", "b"]) == {"a": 1, "b": 2}  # committed, read from the new
        assert new[0].ops()[-1] == "cache_get_all"
        client.close()
    finally:
        old.stop()
        for broker in new:
            broker.stop()


@pytest.mark.parametrize("flavour", ["sync", "aio"])
def test_a_transaction_call_never_reaches_a_broker_that_does_not_hold_it(tmp_path, flavour):
    """The broker (and its stream connection) is gone, a new one is there: the transaction's
    next call fails, not sent; a call of no transaction goes to the new broker."""
    endpoint = f"unix://{tmp_path}/broker.stream"
    store: dict = {}
    old = FakeBroker(endpoint, store=store)
    brokers = [old]

    def restart() -> FakeBroker:
        old.stop()
        brokers.append(FakeBroker(endpoint, store=store))
        return brokers[-1]

    def sync() -> FakeBroker:
        client = Client(broker=endpoint, timeout=10)
        client.connect()
        cache = client.get_or_create_cache("c")
        with client.tx_start() as tx:
            cache.put("a", 1)
            new = restart()
            with pytest.raises(BrokerUnavailable, match="has ended, and they with it: "
                               "cache_put was not sent") as err:
                cache.put("b", 2)
            assert err.value.maybe_applied is False
            with pytest.raises(BrokerUnavailable, match="tx_end was not sent"):
                tx.rollback()  # its call fails the same way: nothing is sent
        assert cache.get("a") is None  # the new broker, outside any transaction
        client.close()
        return new

    async def aio() -> FakeBroker:
        client = AioClient(broker=endpoint)
        async with client.connect():
            cache = await client.get_or_create_cache("c")
            async with client.tx_start() as tx:
                await cache.put("a", 1)
                new = await asyncio.to_thread(restart)
                await asyncio.sleep(0.2)  # the stub sees the connection's end
                with pytest.raises(BrokerUnavailable, match="has ended, and they with it"):
                    await cache.put("b", 2)
                with pytest.raises(BrokerUnavailable, match="tx_end was not sent"):
                    await tx.rollback()
            assert await cache.get("a") is None
        return new

    try:
        new = sync() if flavour == "sync" else asyncio.run(asyncio.wait_for(aio(), 30))
        assert "cache_put" not in new.ops() and "tx_end" not in new.ops()
        assert "cache_get" in new.ops()
    finally:
        for broker in brokers:
            broker.stop()


def _until_told(broker: StoppingBroker) -> None:
    for _ in range(2000):
        if broker.told:
            return
        time.sleep(0.01)


def _zmq_peer(broker: FakeBroker, op: str) -> bytes:
    return [peer for peer, o, _ in broker.requests if o == op][-1]


def test_sync_going_away_on_zeromq_moves_the_next_request_to_a_new_socket(tmp_path):
    broker = StoppingBroker(f"ipc://{tmp_path}/broker.sock", {})
    try:
        client = Client(broker=broker.endpoint, timeout=5)
        client.connect()
        cache = client.get_or_create_cache("c")
        cache.put("k", 1)
        first = _zmq_peer(broker, "cache_put")
        broker.go_away_to(first)
        chan = client._transport.channel()
        assert chan.sock.poll(10_000)  # the GOING_AWAY has arrived, unread
        assert cache.get("k") == 1
        assert _zmq_peer(broker, "cache_get") != first
        client.close()
    finally:
        broker.stop()


def test_aio_going_away_on_zeromq_moves_the_next_request_to_a_new_socket(tmp_path):
    broker = StoppingBroker(f"ipc://{tmp_path}/broker.sock", {})

    async def main() -> None:
        client = AioClient(broker=broker.endpoint)
        async with client.connect():
            cache = await client.get_or_create_cache("c")
            await cache.put("k", 1)
            first = _zmq_peer(broker, "cache_put")
            old = client._transport.channel()
            broker.go_away_to(first)
            assert old.raw.poll(10_000)  # the GOING_AWAY has arrived, unread
            assert await cache.get("k") == 1
            assert _zmq_peer(broker, "cache_get") != first
            assert old.retired and client._transport.channel() is not old

    try:
        asyncio.run(asyncio.wait_for(main(), 30))
    finally:
        broker.stop()
