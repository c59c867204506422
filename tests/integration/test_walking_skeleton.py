"""End to end: worker processes -> libclient -> ZeroMQ -> broker -> real Ignite node -> back,
checked value by value and against pyignite talking to the same node directly."""

from __future__ import annotations

import uuid

import pytest
from pyignite import Client as PyigniteClient
from pyignite.datatypes import IntObject as PyIntObject
from pyignite.exceptions import CacheError as PyCacheError

from broker.devcluster.brokerproc import running_broker
from libclient import Client
from libclient.datatypes import IntObject
from libclient.exceptions import CacheError, ParameterError
from tests.integration.workers import run_workers

pytestmark = pytest.mark.integration

WORKERS = 4
KEYS_PER_WORKER = 200


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory):
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("broker")) as proc:
        yield proc


@pytest.fixture
def client(broker):
    with Client(broker=broker.endpoint) as c:
        c.connect()
        yield c


@pytest.fixture
def direct(ignite_node):
    c = PyigniteClient()
    c.connect(*ignite_node.addresses[0])
    yield c
    c.close()


def _value_for(worker: int, j: int):
    choices = [f"w{worker} value {j} ✓", j * 7 - 100, j / 3, bytes([worker, j % 256]), j % 2 == 0]
    return choices[j % 5]


def _worker(endpoint: str, cache_name: str, index: int, out) -> None:
    with Client(broker=endpoint) as client:
        client.connect()
        cache = client.get_or_create_cache(cache_name)
        for j in range(KEYS_PER_WORKER):
            cache.put(f"{index}:{j}", _value_for(index, j))
        wrong = [j for j in range(KEYS_PER_WORKER)
                 if cache.get(f"{index}:{j}") != _value_for(index, j)]
    out.put((index, wrong))


def test_worker_processes_put_and_get_through_the_broker(broker):
    cache_name = f"skeleton-{uuid.uuid4().hex[:8]}"
    results = run_workers(_worker, (broker.endpoint, cache_name), WORKERS)
    assert results == {i: [] for i in range(WORKERS)}

    # Every worker's writes are visible to a fresh client: nothing acknowledged was lost.
    with Client(broker=broker.endpoint) as client:
        client.connect()
        cache = client.get_cache(cache_name)
        for i in range(WORKERS):
            for j in range(KEYS_PER_WORKER):
                assert cache.get(f"{i}:{j}") == _value_for(i, j)
        assert cache_name in client.get_cache_names()


SAMPLES = [
    ("str", "plain"), ("unicode", "zürich ☃ 𝄞"), ("empty", ""), ("long", 2**63 - 1),
    ("neg", -(2**63)), ("zero", 0), ("float", 1.25), ("bytes", b"\x00\xffabc"),
    ("empty-bytes", b""), ("true", True), ("false", False), (12345, "int key"),
]


def test_same_results_as_pyignite_and_cross_readable(client, direct):
    name = f"diff-{uuid.uuid4().hex[:8]}"
    ours = client.get_or_create_cache(name)
    theirs = direct.get_or_create_cache(name)
    for key, value in SAMPLES:
        ours.put(f"ours-{key}", value)
        theirs.put(f"theirs-{key}", value)
    for key, value in SAMPLES:
        # written by libclient, read by pyignite; written by pyignite, read by libclient
        assert theirs.get(f"ours-{key}") == value
        assert ours.get(f"theirs-{key}") == value
        assert ours.get(f"ours-{key}") == theirs.get(f"theirs-{key}")
    assert ours.get("missing") is None and theirs.get("missing") is None
    assert sorted(client.get_cache_names()) == sorted(direct.get_cache_names())


def test_type_hints_match_pyignite(client, direct):
    name = f"hints-{uuid.uuid4().hex[:8]}"
    ours = client.get_or_create_cache(name)
    theirs = direct.get_cache(name)
    ours.put(7, 70, key_hint=IntObject, value_hint=IntObject)
    # An Int key is a different key from a Long key: both clients must agree.
    assert theirs.get(7, key_hint=PyIntObject) == 70
    assert theirs.get(7) is None
    assert ours.get(7) is None
    theirs.put(8, 80, key_hint=PyIntObject)
    assert ours.get(8, key_hint=IntObject) == 80


def test_server_errors_map_to_pyignite_exceptions(client, direct):
    missing = f"no-such-cache-{uuid.uuid4().hex[:8]}"
    with pytest.raises(PyCacheError) as theirs:
        direct.get_cache(missing).get(1)
    with pytest.raises(CacheError) as ours:
        client.get_cache(missing).get(1)
    assert "Cache does not exist" in str(theirs.value)
    assert "Cache does not exist" in str(ours.value)


def test_broker_refuses_addresses_of_another_cluster(broker):
    with Client(broker=broker.endpoint) as c, pytest.raises(ParameterError, match="not a node"):
        c.connect("127.0.0.1", 1)
