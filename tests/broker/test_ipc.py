"""The IPC envelope: round trips, validation, and hostile frames."""

import decimal
import uuid

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import ipc
from protocol.binary import values


def test_request_round_trip():
    frame = ipc.pack_request(7, "cache_get", {"cache": "c", "key": ipc.Typed(3, 5)}, 123)
    req = ipc.unpack_request(frame)
    assert req == ipc.Request(7, "cache_get", 123, {"cache": "c", "key": ipc.Typed(3, 5)})


def test_reply_round_trip_with_ext_values():
    u = uuid.uuid4()
    payload = [u, decimal.Decimal("-1.50"), b"\x00", "s", None, 2**63 - 1]
    reply = ipc.unpack_reply(ipc.pack_reply(9, ipc.Status.OK, payload))
    assert reply == ipc.Reply(9, 0, payload)


def test_replies_carry_lone_surrogates_and_requests_refuse_them():
    """A node's CHAR may be a lone UTF-16 surrogate: replies carry it ("surrogatepass" UTF-8,
    also inside ext values); a request with one is refused, as before."""
    payload = ["\udc80", {"a\ud800": ipc.Typed(7, "\udfff")}, "plain"]
    assert ipc.unpack_reply(ipc.pack_reply(3, ipc.Status.OK, payload)).payload == payload
    with pytest.raises(ipc.IpcError):
        ipc.pack_request(1, "cache_put", {"value": "\udc80"}, 0)
    frame = msgpack.packb([1, 1, "cache_put", 0, {"value": "\udc80"}],
                          unicode_errors="surrogatepass")
    with pytest.raises(ipc.IpcError, match="malformed"):
        ipc.unpack_request(frame)


@pytest.mark.parametrize("frame, message", [
    (b"\xc1", "malformed"),
    (msgpack.packb([1, 2, 3]), "5-element"),
    (msgpack.packb([1, -1, "op", 0, {}]), "request id"),
    (msgpack.packb([1, 1, 5, 0, {}]), "op must be"),
    (msgpack.packb([1, 1, "op", 0, []]), "args must be"),
    (msgpack.packb([1, 1, "op", 0, {1: 2}]), "args must be"),
    (msgpack.packb([1, 1, "op", "soon", {}]), "deadline"),
])
def test_bad_envelopes_are_refused(frame, message):
    with pytest.raises(ipc.IpcError, match=message):
        ipc.unpack_request(frame)


def test_other_version_is_named():
    with pytest.raises(ipc.UnsupportedVersion) as err:
        ipc.unpack_request(msgpack.packb([2, 5, "op", 0, {}]))
    assert err.value.request_id == 5


def test_unpackable_values_raise_ipc_error():
    with pytest.raises(ipc.IpcError):
        ipc.pack_request(1, "x", {"v": object()})


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_a_request_or_ipc_error(data):
    try:
        request = ipc.unpack_request(data)
    except ipc.IpcError:
        return
    assert isinstance(request, ipc.Request)


def test_the_stub_defaults_to_the_stream_socket():
    from protocol.ipcstream import default_stub_endpoint

    assert default_stub_endpoint({"IGNITE_BROKER": "ipc:///x.sock"}, 5) == "ipc:///x.sock"
    assert default_stub_endpoint({}, 0) == "unix:///run/ignite-broker/broker.stream"
    assert default_stub_endpoint({"XDG_RUNTIME_DIR": "/run/user/5"}, 5) == \
        "unix:///run/user/5/ignite-broker/broker.stream"


def test_default_endpoint_order():
    assert ipc.default_endpoint({"IGNITE_BROKER": "tcp://h:1"}, 1000) == "tcp://h:1"
    assert ipc.default_endpoint({}, 0) == "ipc:///run/ignite-broker/broker.sock"
    assert ipc.default_endpoint({"XDG_RUNTIME_DIR": "/run/user/5"}, 5) == \
        "ipc:///run/user/5/ignite-broker/broker.sock"
    assert ipc.default_endpoint({}, 5) == "ipc:///tmp/ignite-broker-5/broker.sock"
    assert ipc.default_endpoint({"RUNTIME_DIRECTORY": "/run/x"}, 5) == "ipc:///run/x/broker.sock"


@pytest.mark.parametrize("value", [
    ipc.Typed(3, 5),
    values.Timestamp(1_700_000_000_123, 456_789),
    values.Date(-5),
    values.Time(86_399_999),
    values.EnumValue(12, 3),
    values.BinaryObject(77, {"a": 1, "b": [values.Date(1)]}, type_name="Person"),
    values.Collection(values.CollectionKind.HASH_SET, [1, "x"]),
    values.Map(values.MapKind.LINKED_HASH_MAP, [(1, "a"), ("b", None)]),
    values.ObjectArray(-1, [uuid.UUID(int=5), decimal.Decimal("1e-3")]),
])
def test_value_classes_cross_as_ext_types(value):
    assert ipc.unpack(ipc.pack([value]))[0] == value


def test_unknown_or_malformed_ext_is_ipc_error():
    with pytest.raises(ipc.IpcError):
        ipc.unpack(msgpack.packb(msgpack.ExtType(99, b"")))
    with pytest.raises(ipc.IpcError):
        ipc.unpack(msgpack.packb(msgpack.ExtType(ipc.ExtCode.DATE, msgpack.packb(5))))
    with pytest.raises(ipc.IpcError):
        ipc.unpack(msgpack.packb(msgpack.ExtType(ipc.ExtCode.DATE, msgpack.packb([]))))


def test_the_broker_serves_exactly_the_ops_of_the_contract():
    """protocol.ipc.OPS is the one list of IPC ops (the stub reports their codes in events)."""
    from broker.handlers import HANDLERS

    assert set(HANDLERS) == set(ipc.OPS)
