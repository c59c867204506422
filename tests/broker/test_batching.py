"""Automatic batching (broker/batching.py) over a fake node that keeps a real key-value store
(no JVM): gets and puts sent in one front-end batch go as one get_all/put_all, each worker
gets its own answer, per-key order holds, only identical-but-for-the-key requests share a
batch, a refused batch is retried one by one with per-request errors, a lost one fails each
request, the bounds split batches, and nothing batches without an open front-end batch."""

from __future__ import annotations

import struct
from typing import Any

from broker.batching import key_end
from broker.limits import Limits
from protocol import OpCode, ops
from protocol.binary.codec import encode_value
from protocol.ipc import Status
from tests.broker.fakenode import Harness, run

_I32 = struct.Struct("<i")
_PREFIX = ops.cache_prefix_size()
_EXPIRY_PREFIX = ops.cache_prefix_size(expiry=True)
_NULL = b"\x65"


class Store:
    """Serves CACHE_GET/PUT/GET_ALL/PUT_ALL on a fake node from a dict of encoded keys and
    values; ``refuse`` makes an op answer an error, ``bad`` keys fail on their own."""

    def __init__(self, h: Harness, node: int = 0) -> None:
        self.data: dict[bytes, bytes] = {}
        self.bad: set[bytes] = set()  # keys whose single put or get the node refuses
        self.refuse: set[OpCode] = set()
        overrides = h.nodes[node].overrides
        overrides[OpCode.CACHE_GET] = self._get
        overrides[OpCode.CACHE_PUT] = self._put
        overrides[OpCode.CACHE_GET_ALL] = self._get_all
        overrides[OpCode.CACHE_PUT_ALL] = self._put_all

    @staticmethod
    def _start(body: bytes) -> int:
        return _EXPIRY_PREFIX if body[4] & 0x04 else _PREFIX

    def _get(self, body: bytes) -> Any:
        key = body[self._start(body):]
        if key in self.bad:
            return (1, f"bad key {key.hex()}")
        return self.data.get(key, _NULL)

    def _put(self, body: bytes) -> Any:
        pos = self._start(body)
        end = key_end(body, pos)
        if body[pos:end] in self.bad:
            return (1, "bad key")
        self.data[body[pos:end]] = body[end:]
        return b""

    def _get_all(self, body: bytes) -> Any:
        if OpCode.CACHE_GET_ALL in self.refuse:
            return (1, "get_all refused")
        pos = self._start(body)
        count = _I32.unpack_from(body, pos)[0]
        pos += 4
        found = []
        for _ in range(count):
            end = key_end(body, pos)
            key, pos = body[pos:end], end
            if key in self.data:
                found.append(key + self.data[key])
        return _I32.pack(len(found)) + b"".join(found)

    def _put_all(self, body: bytes) -> Any:
        if OpCode.CACHE_PUT_ALL in self.refuse:
            return (1, "put_all refused")
        pos = self._start(body)
        count = _I32.unpack_from(body, pos)[0]
        pos += 4
        for _ in range(count):
            end = key_end(body, pos)
            value_end = key_end(body, end)
            self.data[body[pos:end]] = body[end:value_end]
            pos = value_end
        return b""


def _get(key: Any, **more: Any) -> dict[str, Any]:
    return {"cache": "ops-kv", "key": key, **more}


def _put(key: Any, value: Any, **more: Any) -> dict[str, Any]:
    return {"cache": "ops-kv", "key": key, "value": value, **more}


def _in_one_batch(h: Harness, *requests: tuple[str, dict[str, Any], bytes]) -> list[int]:
    """Send ``requests`` (op, args, worker) as the front end does within one loop iteration."""
    h.pool.batch.begin()
    rids = [h.send(op, args, worker=worker) for op, args, worker in requests]
    h.pool.batch.end()
    return rids


async def _answers(h: Harness, rids: list[int]) -> list[tuple[int, Any]]:
    await h.until(lambda: all(r in h.replies for r in rids))
    return [h.replies[r] for r in rids]


def _sent(h: Harness) -> list[OpCode]:
    return [op for op in h.nodes[0].ops() if op in (
        OpCode.CACHE_GET, OpCode.CACHE_PUT, OpCode.CACHE_GET_ALL, OpCode.CACHE_PUT_ALL,
        OpCode.CACHE_REPLACE)]


@run
async def test_gets_of_one_iteration_go_as_one_get_all_and_each_worker_gets_its_value():
    h = await Harness(1).start()
    store = Store(h)
    store.data[encode_value(1)] = encode_value("one")
    store.data[encode_value("two")] = encode_value(2)
    rids = _in_one_batch(h, ("cache_get", _get(1), b"a"), ("cache_get", _get("two"), b"b"),
                         ("cache_get", _get(3), b"c"), ("cache_get", _get(1), b"d"))
    assert await _answers(h, rids) == [(Status.OK, "one"), (Status.OK, 2), (Status.OK, None),
                                       (Status.OK, "one")]
    assert _sent(h) == [OpCode.CACHE_GET_ALL]
    assert h.dispatcher.batching_stats() == {"batched_requests": 4, "batches": 1,
                                             "unbatched_requests": 0}
    await h.close()


@run
async def test_puts_of_distinct_keys_go_as_one_put_all_and_are_all_applied():
    h = await Harness(1).start()
    store = Store(h)
    rids = _in_one_batch(h, *(("cache_put", _put(k, f"v{k}"), b"w%d" % k) for k in range(5)))
    assert await _answers(h, rids) == [(Status.OK, None)] * 5
    assert _sent(h) == [OpCode.CACHE_PUT_ALL]
    assert store.data == {encode_value(k): encode_value(f"v{k}") for k in range(5)}
    await h.close()


@run
async def test_two_puts_of_one_key_never_share_a_batch_and_keep_their_order():
    h = await Harness(1).start()
    store = Store(h)
    rids = _in_one_batch(h, ("cache_put", _put(1, "first"), b"a"),
                         ("cache_put", _put(2, "x"), b"a"),
                         ("cache_put", _put(1, "second"), b"b"))
    assert await _answers(h, rids) == [(Status.OK, None)] * 3
    assert _sent(h) == [OpCode.CACHE_PUT_ALL, OpCode.CACHE_PUT]
    assert store.data[encode_value(1)] == encode_value("second")
    await h.close()


@run
async def test_a_get_after_a_put_of_the_same_key_in_one_iteration_sees_the_put():
    h = await Harness(1).start()
    Store(h)
    rids = _in_one_batch(h, ("cache_get", _get(7), b"a"), ("cache_put", _put(7, "new"), b"a"),
                         ("cache_put", _put(8, "y"), b"a"), ("cache_get", _get(7), b"a"),
                         ("cache_get", _get(9), b"b"))
    answers = await _answers(h, rids)
    assert answers[0] == (Status.OK, None) and answers[3] == (Status.OK, "new")
    assert _sent(h) == [OpCode.CACHE_GET, OpCode.CACHE_PUT_ALL, OpCode.CACHE_GET_ALL]
    await h.close()


@run
async def test_only_requests_identical_but_for_the_key_share_a_batch():
    h = await Harness(1).start()
    store = Store(h)
    store.data[encode_value(1)] = encode_value("one")
    expiry = {"expiry": [1000, -2, -2]}
    rids = _in_one_batch(h, ("cache_get", _get(1), b"a"), ("cache_get", _get(2), b"b"),
                         ("cache_get", _get(1, **expiry), b"c"),
                         ("cache_get", _get(2, **expiry), b"d"),
                         ("cache_get", {"cache": "other", "key": 1}, b"e"))
    answers = await _answers(h, rids)
    assert answers[:4] == [(Status.OK, "one"), (Status.OK, None)] * 2
    assert _sent(h).count(OpCode.CACHE_GET_ALL) == 2 and OpCode.CACHE_GET in _sent(h)
    bodies = [body for op, _, body in h.nodes[0].requests if op == OpCode.CACHE_GET_ALL]
    keys = len(encode_value(1) + encode_value(2))
    assert {len(b) for b in bodies} == {_PREFIX + 4 + keys, _EXPIRY_PREFIX + 4 + keys}
    await h.close()


@run
async def test_a_refused_batch_is_retried_one_by_one_and_errors_stay_per_request():
    h = await Harness(1).start()
    store = Store(h)
    store.refuse = {OpCode.CACHE_PUT_ALL, OpCode.CACHE_GET_ALL}
    store.bad.add(encode_value("bad"))
    rids = _in_one_batch(h, ("cache_put", _put(1, "a"), b"a"),
                         ("cache_put", _put("bad", "b"), b"b"),
                         ("cache_put", _put(3, "c"), b"c"))
    answers = await _answers(h, rids)
    assert answers[0] == answers[2] == (Status.OK, None)
    assert answers[1][0] == Status.SERVER_ERROR and answers[1][1]["message"] == "bad key"
    rids = _in_one_batch(h, ("cache_get", _get(1), b"a"), ("cache_get", _get("bad"), b"b"))
    answers = await _answers(h, rids)
    assert answers[0] == (Status.OK, "a") and answers[1][0] == Status.SERVER_ERROR
    assert _sent(h) == [OpCode.CACHE_PUT_ALL, *[OpCode.CACHE_PUT] * 3, OpCode.CACHE_GET_ALL,
                        OpCode.CACHE_GET, OpCode.CACHE_GET]
    assert h.dispatcher.batching_stats()["unbatched_requests"] == 5
    await h.close()


@run
async def test_a_batch_lost_with_its_connection_fails_each_put_as_maybe_applied():
    h = await Harness(1).start()
    Store(h)
    h.nodes[0].hold.add(OpCode.CACHE_PUT_ALL)
    rids = _in_one_batch(h, ("cache_put", _put(1, "a"), b"a"), ("cache_put", _put(2, "b"), b"b"))
    await h.until(lambda: OpCode.CACHE_PUT_ALL in h.nodes[0].ops())
    h.nodes[0].stop()
    answers = await _answers(h, rids)
    assert [a[0] for a in answers] == [Status.CLUSTER_UNAVAILABLE] * 2
    assert all(a[1]["maybe_applied"] for a in answers)
    await h.close()


@run
async def test_another_call_sends_the_waiting_batches_first():
    h = await Harness(1).start()
    Store(h)
    h.nodes[0].overrides[OpCode.CACHE_REPLACE] = lambda body: b"\x01"
    rids = _in_one_batch(h, ("cache_put", _put(1, "a"), b"a"), ("cache_put", _put(2, "b"), b"a"),
                         ("cache_replace", _put(1, "c"), b"a"))
    assert await _answers(h, rids) == [(Status.OK, None), (Status.OK, None), (Status.OK, True)]
    assert _sent(h) == [OpCode.CACHE_PUT_ALL, OpCode.CACHE_REPLACE]
    await h.close()


@run
async def test_the_bounds_split_batches():
    h = await Harness(1, limits=Limits(batch_max_keys=2, batch_max_bytes=1000)).start()
    store = Store(h)
    rids = _in_one_batch(h, *(("cache_get", _get(k), b"a") for k in range(5)))
    await _answers(h, rids)
    assert _sent(h) == [OpCode.CACHE_GET_ALL, OpCode.CACHE_GET_ALL, OpCode.CACHE_GET]
    big = "x" * 600
    rids = _in_one_batch(h, *(("cache_put", _put(k, big), b"a") for k in range(3)))
    assert await _answers(h, rids) == [(Status.OK, None)] * 3
    assert _sent(h)[3:] == [OpCode.CACHE_PUT, OpCode.CACHE_PUT, OpCode.CACHE_PUT]
    assert len(store.data) == 3
    await h.close()


@run
async def test_nothing_batches_outside_a_front_end_batch_or_when_switched_off():
    for limits, batch in ((Limits(), False), (Limits(batch_requests=False), True)):
        h = await Harness(1, limits=limits).start()
        Store(h)
        if batch:
            h.pool.batch.begin()
        rids = [h.send("cache_get", _get(k)) for k in range(3)]
        if batch:
            h.pool.batch.end()
        assert await _answers(h, rids) == [(Status.OK, None)] * 3
        assert _sent(h) == [OpCode.CACHE_GET] * 3
        assert h.dispatcher.batching_stats()["batches"] == 0
        await h.close()


@run
async def test_keys_of_other_types_are_not_batched():
    h = await Harness(1).start()
    Store(h)
    rids = _in_one_batch(h, ("cache_get", _get([1, 2]), b"a"), ("cache_get", _get([3]), b"b"))
    await _answers(h, rids)
    assert _sent(h) == [OpCode.CACHE_GET] * 2
    await h.close()


def test_key_end_knows_the_batched_key_types_and_refuses_the_rest():
    for value in (1, 2**40, 1.5, True, "ключ", "x"):
        encoded = encode_value(value)
        assert key_end(encoded + b"tail", 0) == len(encoded)
    assert key_end(encode_value([1, 2]), 0) == -1
    assert key_end(encode_value("abc")[:-1], 0) == -1  # overruns the body
    assert key_end(b"", 0) == -1


@run
async def test_requests_for_different_nodes_go_in_different_batches():
    h = await Harness(1).start()
    store = Store(h)
    batcher = h.dispatcher.batcher
    assert batcher is not None
    primary = {encode_value(k): f"node-{k % 2}" for k in range(6)}
    batcher._node = (  # type: ignore[method-assign]
        lambda cache, body, pos: primary[body[pos:key_end(body, pos)]])
    rids = _in_one_batch(h, *(("cache_put", _put(k, k), b"a") for k in range(6)))
    assert await _answers(h, rids) == [(Status.OK, None)] * 6
    bodies = [body for op, _, body in h.nodes[0].requests if op == OpCode.CACHE_PUT_ALL]
    assert len(bodies) == 2 and all(_I32.unpack_from(b, _PREFIX)[0] == 3 for b in bodies)
    assert len(store.data) == 6
    await h.close()
