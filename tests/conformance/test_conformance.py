"""The conformance kit run on our own implementations: the broker (real, on real nodes) answers
every recorded request as recorded, and the Python stub sends every recorded request when a fake
broker replays the recorded replies; over unix:// and ipc:// both. Also checks the kit itself:
its vectors cover every op the broker serves and decode losslessly, its matcher notices
differences, and the tables of docs/ipc.md are the code's."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from broker import ops_admin, ops_cq, ops_kv, ops_query
from broker.devcluster.brokerproc import running_broker
from libclient import Client
from protocol import ipc
from tests.conformance import cases, check_broker, doctables
from tests.conformance.capture import BROKER_SETTINGS
from tests.conformance.check_stub import ReplayBroker
from tests.conformance.wire import Mismatch, any_of, decode, encode, match, var

VECTORS = check_broker.load()
DOC = Path(__file__).parents[2] / "docs" / "ipc.md"
STUB_CASES = [c for c in VECTORS["cases"] if c["kind"] == "stub"]


@pytest.fixture(params=["unix", "ipc"])
def transport(request):
    return request.param


def _endpoint(transport: str, directory: Path) -> str:
    return f"unix://{directory}/fake.stream" if transport == "unix" else \
        f"ipc://{directory}/fake.sock"


# -- the kit -----------------------------------------------------------------------------------


def test_vectors_cover_every_op_the_broker_serves():
    served = set(ops_kv.HANDLERS) | set(ops_query.HANDLERS) | set(ops_admin.HANDLERS) \
        | set(ops_cq.HANDLERS)
    recorded = {ex["op"] for case in VECTORS["cases"] for ex in case["exchanges"]
                if ex["reply"][2] == 0}
    assert served - recorded == set()
    pushed = [ex["reply"] for case in VECTORS["cases"] for ex in case["exchanges"]
              if ex.get("push")]
    assert {row[3] for push in pushed for row in push[3].get("events", [])} == {0, 1, 2}, \
        "EVENT pushes of a create, an update and a remove"
    assert [c["name"] for c in STUB_CASES] == list(cases.STUB_CASES)


def test_vectors_decode_losslessly():
    for case in VECTORS["cases"]:
        for ex in case["exchanges"]:
            if ex["request"] is not None:
                assert encode(ex["request"]).hex() == ex["request_hex"]
                assert match(ex["request"], decode(bytes.fromhex(ex["request_hex"])), {}) \
                    is None
            assert encode(ex["reply"]).hex() == ex["reply_hex"]


@pytest.mark.parametrize(("expected", "actual"), [
    (1, True), (True, 1), ("a", {"$bin": "61"}), ({"$float": 1.0}, 1), ([1], [1, 2]),
    ({"a": 1}, {"a": 1, "b": 2}), ({"$ext": 2, "hex": "00"}, {"$ext": 2, "hex": "01"}),
    ({"$ext": 8, "value": [1]}, {"$ext": 9, "value": [1]}), (any_of("int", 1), "1"),
    ({"$map": [[1, 2]]}, {"$map": [[2, 2]]}),
])
def test_the_matcher_tells_msgpack_types_and_values_apart(expected, actual):
    with pytest.raises(Mismatch):
        match(expected, actual, {})


def test_a_handle_is_bound_once_and_must_come_back_the_same():
    bindings: dict = {}
    match([var("tx1", 5)], [17], bindings)
    match({"tx": var("tx1", 5)}, {"tx": 17}, bindings)
    with pytest.raises(Mismatch):
        match({"tx": var("tx1", 5)}, {"tx": 5}, bindings)


def test_docs_status_and_ext_tables_are_the_protocols():
    text = DOC.read_text()
    rows = [f"| {m.value} | {m.name} |" for m in (*ipc.Status, *ipc.ExtCode)]
    assert [row for row in rows if row not in text] == []


def test_docs_tables_are_generated_from_the_code():
    text = DOC.read_text()
    stale = [name for name, table in doctables.tables().items() if table not in text]
    assert stale == [], ("docs/ipc.md is out of date: run python -m tests.conformance.doctables "
                         f"--write ({stale})")


# -- the Python stub against recorded replies (no broker, no nodes) ---------------------------


def test_python_stub_sends_the_recorded_requests(transport, tmp_path):
    fake = ReplayBroker(_endpoint(transport, tmp_path))
    try:
        for case in STUB_CASES:
            fake.expect([case])
            client = Client(broker=fake.endpoint, timeout=10)
            client.connect()
            try:
                results = cases.STUB_CASES[case["name"]](client)
            finally:
                client.close()
            assert fake.unexpected == [], case["name"]
            assert fake.unused() == [], case["name"]
            assert repr(results) == case["python_results"], case["name"]
    finally:
        fake.stop()


def test_a_stub_that_deviates_is_reported(tmp_path):
    case = copy.deepcopy(next(c for c in STUB_CASES if c["name"] == "tx"))
    put = next(ex for ex in case["exchanges"] if ex["op"] == "cache_put")
    put["request"][4]["value"] = 2  # the stub will send 1
    fake = ReplayBroker(_endpoint("unix", tmp_path))
    try:
        fake.expect([case])
        client = Client(broker=fake.endpoint, timeout=10)
        client.connect()
        with pytest.raises(Exception):  # noqa: B017 - whichever the stub maps BAD_REQUEST to
            cases.tx_case(client)
        client.close()
        assert fake.unexpected and "no recorded request matches" in fake.unexpected[0]
        assert fake.unused()
    finally:
        fake.stop()


# -- the broker against recorded requests (real broker, real node) ----------------------------


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory):
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("conformance"),
                        BROKER_SETTINGS) as proc:
        yield proc


@pytest.mark.integration
def test_broker_answers_as_recorded(broker, transport):
    endpoint = broker.stream_endpoint if transport == "unix" else broker.endpoint
    assert check_broker.check(endpoint, VECTORS) == []
