"""The differential suite: each scripted scenario runs through pyignite talking to the node
directly and through libclient talking to a real broker, against the same real cluster; the
transcripts (results and exception classes) must be equal, with the broker's compiled hot path
and with its pure-Python fallback.  Several scenarios are pyignite's
own examples with only the import changed (see tests/libclient/scenarios.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from broker import native
from broker.devcluster.brokerproc import running_broker
from tests.libclient import scenarios
from tests.libclient.scenarios import Lib

pytestmark = pytest.mark.integration

PYIGNITE = Lib.load("pyignite")
LIBCLIENT = Lib.load("libclient")


@pytest.fixture(scope="module", params=["compiled", "pure"])
def broker(ignite_node, tmp_path_factory, request):
    """The broker as it runs by default (its compiled hot path when ./dev built it: checked by
    test_native.py), and its pure-Python fallback: both must pass every scenario."""
    env = {native.SWITCH: "0"} if request.param == "pure" else None
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("lc-diff"),
                        env=env) as proc:
        yield proc


@pytest.fixture(params=["zmq", "stream"])
def clients(ignite_node, broker, request):
    """pyignite direct, and libclient over each of the broker's transports."""
    theirs = PYIGNITE.Client()
    theirs.connect(*ignite_node.addresses[0])
    endpoint = broker.endpoint if request.param == "zmq" else broker.stream_endpoint
    ours = LIBCLIENT.Client(broker=endpoint)
    ours.connect(*ignite_node.addresses[0])
    yield theirs, ours
    theirs.close()
    ours.close()


@pytest.mark.parametrize("scenario", scenarios.SYNC, ids=lambda f: f.__name__)
def test_sync_scenario(scenario, clients):
    theirs, ours = clients
    tag = uuid.uuid4().hex[:6]
    expected = scenario(PYIGNITE, theirs, f"py{tag}")
    got = scenario(LIBCLIENT, ours, f"lc{tag}")
    assert got == expected


@pytest.mark.parametrize("scenario", scenarios.ASYNC, ids=lambda f: f.__name__)
def test_async_scenario(scenario, ignite_node, broker):
    host, port = ignite_node.addresses[0]
    tag = uuid.uuid4().hex[:6]

    async def run(lib: Lib, **kwargs: str) -> scenarios.Transcript:
        client = lib.AioClient(**kwargs)
        async with client.connect(host, port):
            return await scenario(lib, client, f"{lib.name[:2]}{tag}")

    expected = asyncio.run(run(PYIGNITE))
    got = asyncio.run(run(LIBCLIENT, broker=broker.endpoint))
    assert got == expected


def test_written_by_one_read_by_the_other(clients):
    """Values and objects libclient writes are what pyignite reads, and the other way round."""
    theirs, ours = clients
    name = f"cross-{uuid.uuid4().hex[:6]}"
    py_cache, lc_cache = theirs.get_or_create_cache(name), ours.get_or_create_cache(name)
    samples = [s for s in scenarios.values(LIBCLIENT) if s[1] is not None]  # put(k, None) fails
    for label, value, hint in scenarios.values(PYIGNITE):
        if value is not None:
            py_cache.put(f"py-{label}", value, value_hint=hint)
    for label, value, hint in samples:
        lc_cache.put(f"lc-{label}", value, value_hint=hint)
    for label, _, _ in samples:
        assert scenarios.norm(lc_cache.get(f"py-{label}")) == scenarios.norm(
            py_cache.get(f"py-{label}")), label
        assert scenarios.norm(py_cache.get(f"lc-{label}")) == scenarios.norm(
            py_cache.get(f"py-{label}")), label
    py_cache.destroy()


def test_complex_objects_cross_read(clients):
    from collections import OrderedDict

    theirs, ours = clients
    name = f"xobj-{uuid.uuid4().hex[:6]}"
    type_name = f"Shared_{name}"

    def make(lib: Lib) -> type:
        return lib.GenericObjectMeta(type_name, (), {}, type_name=type_name, schema=OrderedDict(
            [("id", lib.dt.IntObject), ("label", lib.dt.String), ("score", lib.dt.DoubleObject)]))

    py_cls, lc_cls = make(PYIGNITE), make(LIBCLIENT)
    py_cache, lc_cache = theirs.get_or_create_cache(name), ours.get_or_create_cache(name)
    lc_cache.put(1, lc_cls(id=1, label="from libclient", score=0.5))
    py_cache.put(2, py_cls(id=2, label="from pyignite", score=1.5))
    assert scenarios.norm(py_cache.get(1)) == scenarios.norm(lc_cache.get(1))
    assert scenarios.norm(lc_cache.get(2)) == scenarios.norm(py_cache.get(2))
    assert lc_cache.get(2) == lc_cls(id=2, label="from pyignite", score=1.5)
    py_cache.destroy()


def test_enum_types_libclient(clients):
    """put_binary_type(is_enum=True) fails inside pyignite 0.6.1 (struct.error), so this one
    is libclient's alone: the enum's literals come back as pyignite would show them."""
    _, ours = clients
    name = f"Color_{uuid.uuid4().hex[:6]}"
    result = ours.put_binary_type(name, is_enum=True, schema={"RED": 0, "GREEN": 1})
    assert result == {"type_id": ours.get_binary_type(name)["type_id"], "schema_id": None}
    info = ours.get_binary_type(name)
    assert info["type_exists"] and info["is_enum"] and info["type_name"] == name
    assert info["enums"] == [{"literal": "RED", "type_id": 0}, {"literal": "GREEN", "type_id": 1}]
