"""Admission units (no JVM): the in-flight limits, and parking while no node is reachable or
while paused, each request until its own expiry; the cache-id memo, typed arguments and read
coalescing that handlers use."""

from __future__ import annotations

from typing import Any

import pytest

from broker.admission import Parking, admit
from broker.coalesce import Reads
from broker.errors import BadRequest, ClusterUnavailable, DeadlineExceeded, Overloaded
from broker.limits import Limits
from broker.lookups import CacheIds, arg
from broker.metrics import Metrics
from broker.pool import NodePool
from broker.workers import Workers
from protocol import ConnectionConfig, OpCode, cache_id
from protocol.ipc import Request


def _unreachable_pool() -> NodePool:
    return NodePool([("127.0.0.1", 1)], ConnectionConfig(), ssl_context=None, connect_timeout=1)


def test_admission_names_the_limit_a_request_is_beyond():
    worker = Workers().seen(b"w", 0.0)
    limits = Limits(max_in_flight_per_worker=2, max_in_flight_total=3)
    worker.in_flight = 2
    admit(worker, 3, limits, Metrics())  # at the limits: admitted
    metrics = Metrics()
    worker.in_flight = 3
    with pytest.raises(Overloaded, match="this worker has 2 requests in flight"):
        admit(worker, 3, limits, metrics)
    worker.in_flight = 1
    with pytest.raises(Overloaded, match="the broker has 3 requests in flight"):
        admit(worker, 4, limits, metrics)
    assert metrics.refusals.get("in_flight_per_worker").value == 1
    assert metrics.refusals.get("in_flight_total").value == 1


def test_parked_requests_expire_after_the_queue_wait_or_at_their_deadline_when_paused():
    parking = Parking(_unreachable_pool())
    worker = Workers().seen(b"w", 0.0)
    replies: list[Any] = []
    assert parking.holds("cache_get") and not parking.holds("ping")
    parking.park(worker, Request(1, "cache_get", 0, {}), replies.append, 0.0, 30.0, 5.0)
    assert list(parking.release()) == []  # no node reachable: it stays
    assert parking.expire(4.9) == [] and len(parking) == 1
    assert parking.expire(5.0) == [(replies.append, 0.0)] and len(parking) == 0
    assert isinstance(parking.expired_error(5.0), ClusterUnavailable)
    parking.paused = True
    parking.park(worker, Request(2, "cache_get", 0, {}), replies.append, 0.0, 30.0, 5.0)
    assert parking.expire(29.0) == [] and len(parking.expire(30.0)) == 1
    assert isinstance(parking.expired_error(5.0), DeadlineExceeded)


def test_cache_ids_are_hashed_names_or_checked_ints_and_the_memo_is_bounded():
    ids = CacheIds()
    assert ids.of({"cache": "ops-kv"}) == cache_id("ops-kv") and len(ids) == 1
    assert ids.of({"cache": -5}) == -5
    with pytest.raises(BadRequest, match="signed 32-bit"):
        ids.of({"cache": 2**31})
    assert ids.of({"cache": "x" * 257}) == cache_id("x" * 257) and len(ids) == 1  # too long
    for n in range(10_001):
        ids.of({"cache": f"c{n}"})
    assert len(ids) <= 10_000


def test_arguments_are_checked_for_type_and_presence():
    assert arg({"a": 1}, "a", int) == 1 and arg({}, "a", int, None) is None
    with pytest.raises(BadRequest, match="missing argument 'a'"):
        arg({}, "a", int)
    with pytest.raises(BadRequest, match="wrong type"):
        arg({"a": True}, "a", int)  # a bool is not an int here


def test_identical_reads_in_flight_share_one_answer():
    reads = Reads()
    got: list[tuple[str, int, Any]] = []
    first = reads.join(OpCode.CACHE_GET, b"k", lambda s, p: got.append(("a", s, p)))
    assert first is not None
    assert reads.join(OpCode.CACHE_GET, b"k", lambda s, p: got.append(("b", s, p))) is None
    other = reads.join(OpCode.CACHE_GET, b"other", lambda s, p: got.append(("c", s, p)))
    assert other is not None and reads.coalesced == 1
    first(0, "v")
    assert got == [("a", 0, "v"), ("b", 0, "v")] and len(reads) == 1
