"""Handshake requests per version, responses, version fallback and rejection."""

from __future__ import annotations

import struct

import pytest

from protocol import (
    ClientConnection,
    ConnectionConfig,
    ConnectionState,
    HandshakeAccepted,
    HandshakeRejected,
    LocalProtocolError,
    ProtocolVersion,
    RemoteProtocolError,
)
from tests.protocol.protocol_helpers import (
    NODE_ID,
    chunkings,
    feed,
    frame,
    handshake_fail,
    handshake_ok,
    ignite_str,
)

HEAD_170 = "01" "0100" "0700" "0000" "02"  # op 1, version 1.7.0, thin client
FEATURES_2_3_11 = "0c" "02000000" "0c08"  # byte[] {0b00001100, 0b00001000}
IGNITE_STR = "09" "06000000" + b"ignite".hex()


def handshake_bytes(**config: object) -> str:
    return ClientConnection(ConnectionConfig(**config)).initiate().hex()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            {"versions": [(1, 7, 0)]}, "0f000000" + HEAD_170 + FEATURES_2_3_11, id="1.7.0"
        ),
        pytest.param(
            {"versions": [(1, 7, 0)], "username": "ignite", "password": "ignite"},
            "25000000" + HEAD_170 + FEATURES_2_3_11 + IGNITE_STR + IGNITE_STR,
            id="1.7.0-credentials",
        ),
        pytest.param(
            {"versions": [(1, 7, 0)], "features": frozenset()},
            "0d000000" + HEAD_170 + "0c00000000",
            id="1.7.0-no-features",
        ),
        pytest.param(
            {"versions": [(1, 7, 0)], "username": "u"},
            "16000000" + HEAD_170 + FEATURES_2_3_11 + "090100000075" + "65",
            id="1.7.0-username-null-password",
        ),
        pytest.param(
            {"versions": [(1, 6, 0)]}, "08000000" "01" "0100" "0600" "0000" "02", id="1.6.0"
        ),
        pytest.param(
            {"versions": [(1, 6, 0)], "username": "ignite", "password": "ignite"},
            "1e000000" "01" "0100" "0600" "0000" "02" + IGNITE_STR + IGNITE_STR,
            id="1.6.0-credentials",
        ),
        pytest.param(
            {"versions": [(1, 1, 0)], "username": "ignite", "password": "ignite"},
            "1e000000" "01" "0100" "0100" "0000" "02" + IGNITE_STR + IGNITE_STR,
            id="1.1.0-credentials",
        ),
        pytest.param(
            {"versions": [(1, 0, 0)]}, "08000000" "01" "0100" "0000" "0000" "02", id="1.0.0"
        ),
    ],
)
def test_request_bytes(config: dict[str, object], expected: str) -> None:
    assert handshake_bytes(**config) == expected


def test_non_ascii_credentials_count_utf8_bytes() -> None:
    hexed = handshake_bytes(versions=[(1, 7, 0)], username="jürgen", password="пароль")
    data = bytes.fromhex(hexed)
    (length,) = struct.unpack_from("<i", data)
    assert length == len(data) - 4
    tail = ignite_str("jürgen") + ignite_str("пароль")
    assert data.endswith(tail)
    assert tail[1:5] == struct.pack("<i", 7)  # 6 characters, 7 bytes


def test_user_attributes_map_comes_before_credentials() -> None:
    got = handshake_bytes(
        versions=[(1, 7, 0)], features=frozenset({2}), user_attributes={"k": "v"},
        username="u", password="p",
    )
    body = (
        HEAD_170
        + "0c" "01000000" "05"  # bit 0 (user attributes) + bit 2
        + "19" "01000000" "01"  # Map, 1 pair, HASH_MAP
        + "09010000006b" + "090100000076"  # "k" -> "v"
        + "090100000075" + "090100000070"  # "u", "p"
    )
    assert got == struct.pack("<i", len(body) // 2).hex() + body


def test_bit_zero_needs_user_attributes() -> None:
    with pytest.raises(LocalProtocolError):
        ConnectionConfig(features=frozenset({0, 2}))


def test_same_request_as_pyignite_for_ascii_credentials() -> None:
    pytest.importorskip("pyignite")
    from pyignite.client import Client
    from pyignite.connection.bitmask_feature import BitmaskFeature
    from pyignite.connection.handshake import HandshakeRequest
    from pyignite.connection.protocol_context import ProtocolContext
    from pyignite.stream import BinaryStream

    context = ProtocolContext((1, 7, 0), BitmaskFeature.from_array(bytes([0x04])))
    with BinaryStream(Client()) as stream:
        HandshakeRequest(context, "ignite", "secret").from_python(stream)
        theirs = stream.getvalue()
    ours = handshake_bytes(
        versions=[(1, 7, 0)], features=frozenset({2}), username="ignite", password="secret"
    )
    assert ours == theirs.hex()


# -- responses ------------------------------------------------------------------------------


def start(versions: object = ((1, 7, 0),), **config: object) -> ClientConnection:
    conn = ClientConnection(ConnectionConfig(versions=versions, **config))  # type: ignore[arg-type]
    conn.initiate()
    return conn


@pytest.mark.parametrize(
    ("version", "features", "node_id"),
    [
        pytest.param((1, 7, 0), frozenset({2, 3, 11}), NODE_ID, id="1.7.0"),
        pytest.param((1, 4, 0), frozenset(), NODE_ID, id="1.4.0"),
        pytest.param((1, 0, 0), frozenset(), None, id="1.0.0"),
    ],
)
@pytest.mark.parametrize("mode", ["whole", "bytewise", "halves"])
def test_accepted(version: tuple[int, int, int], features: frozenset[int],
                  node_id: object, mode: str) -> None:
    conn = start([version])
    events = feed(conn, dict(chunkings(handshake_ok(version)))[mode])
    assert events == [HandshakeAccepted(ProtocolVersion(*version), features, node_id)]
    assert conn.state is ConnectionState.READY
    assert (conn.version, conn.features, conn.node_id) == (version, features, node_id)


def test_accepted_features_are_intersected_with_ours() -> None:
    conn = start(features=frozenset({2}))
    [event] = feed(conn, [handshake_ok((1, 7, 0), mask=b"\x2c")])  # bits 2, 3, 5
    assert event.features == frozenset({2})


def test_accepted_leaves_trailing_bytes_for_the_next_frame() -> None:
    conn = start()
    tail = frame(struct.pack("<qh", 1, 0) + b"\x65")
    [event] = feed(conn, [handshake_ok((1, 7, 0)) + tail[:7]])
    assert isinstance(event, HandshakeAccepted)
    conn.send_request(1000, b"")
    [response] = feed(conn, [tail[7:]])
    assert (response.request_id, bytes(response.body)) == (1, b"\x65")


def test_fallback_to_the_version_the_server_proposes() -> None:
    conn = start([(1, 7, 0), (1, 6, 0), (1, 0, 0)])
    [rejected] = feed(conn, [handshake_fail((1, 6, 0), "Unsupported version.", 1)])
    assert rejected == HandshakeRejected(
        ProtocolVersion(1, 6, 0), "Unsupported version.", 1, ProtocolVersion(1, 6, 0)
    )
    assert conn.state is ConnectionState.HANDSHAKE_RETRY
    assert conn.initiate().hex() == "08000000" "01" "0100" "0600" "0000" "02"
    [accepted] = feed(conn, [handshake_ok((1, 6, 0))])
    assert accepted == HandshakeAccepted(ProtocolVersion(1, 6, 0), frozenset(), NODE_ID)
    assert conn.version == (1, 6, 0)


@pytest.mark.parametrize(
    ("versions", "server_version", "status"),
    [
        pytest.param([(1, 7, 0)], (1, 6, 0), 1, id="proposal-not-in-our-list"),
        pytest.param([(1, 6, 0), (1, 7, 0)], (1, 7, 0), 1, id="proposal-not-lower"),
        pytest.param([(1, 7, 0), (1, 6, 0)], (0, 0, 0), 2000, id="auth-failed"),
        pytest.param([(1, 7, 0), (1, 6, 0)], (1, 6, 0), 2000, id="auth-status-wins"),
    ],
)
def test_final_rejections(versions: object, server_version: tuple[int, int, int],
                          status: int) -> None:
    conn = start(versions)
    [rejected] = feed(conn, [handshake_fail(server_version, "no", status)])
    assert isinstance(rejected, HandshakeRejected)
    assert rejected.retry_version is None
    assert rejected.status == status
    assert conn.state is ConnectionState.REJECTED
    with pytest.raises(LocalProtocolError):
        conn.initiate()
    with pytest.raises(LocalProtocolError):
        conn.send_request(1000, b"")


def test_auth_failure_with_non_ascii_message() -> None:
    conn = start(username="ignite", password="wrong")
    [rejected] = feed(conn, [handshake_fail((0, 0, 0), "Ошибка аутентификации", 2000)])
    assert rejected == HandshakeRejected(
        ProtocolVersion(0, 0, 0), "Ошибка аутентификации", 2000, None
    )


def test_rejection_of_a_1_0_0_request_has_no_status() -> None:
    conn = start([(1, 0, 0)])
    [rejected] = feed(conn, [handshake_fail((1, 7, 0), None, None)])
    assert rejected == HandshakeRejected(ProtocolVersion(1, 7, 0), "", None, None)


@pytest.mark.parametrize(
    ("version", "payload"),
    [
        pytest.param((1, 7, 0), b"", id="empty"),
        pytest.param((1, 7, 0), b"\x02", id="bad-success-byte"),
        pytest.param((1, 7, 0), b"\x01", id="missing-features"),
        pytest.param((1, 4, 0), b"\x01\x0a" + b"\x00" * 8, id="short-uuid"),
        pytest.param((1, 4, 0), b"\x01\x09\x00\x00\x00\x00", id="node-id-not-uuid"),
        pytest.param((1, 0, 0), b"\x01\x00", id="trailing-byte"),
        pytest.param((1, 7, 0), b"\x01\x09\x00\x00\x00\x00", id="features-not-bytes"),
        pytest.param((1, 7, 0), b"\x00\x01\x00\x07\x00", id="short-failure"),
        pytest.param((1, 7, 0), b"\x00" + b"\x00" * 6 + b"\x65", id="failure-missing-status"),
        pytest.param((1, 7, 0), b"\x00" + b"\x00" * 6 + b"\x03\x00", id="message-not-string"),
    ],
)
def test_malformed_responses(version: tuple[int, int, int], payload: bytes) -> None:
    conn = start([version])
    with pytest.raises(RemoteProtocolError):
        feed(conn, [frame(payload)])
    assert conn.state is ConnectionState.ERROR
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_null_node_id_is_accepted() -> None:
    conn = start([(1, 4, 0)])
    [event] = feed(conn, [frame(b"\x01\x65")])
    assert event.node_id is None


# -- configuration ----------------------------------------------------------------------------


def test_config_repr_hides_the_password() -> None:
    assert "s3cret" not in repr(ConnectionConfig(username="u", password="s3cret"))


def test_versions_are_sorted_newest_first() -> None:
    cfg = ConnectionConfig(versions=[(1, 0, 0), (1, 7, 0), (1, 4, 0), (1, 7, 0)])
    assert cfg.versions == ((1, 7, 0), (1, 4, 0), (1, 0, 0))
    assert all(isinstance(v, ProtocolVersion) for v in cfg.versions)


def test_credentials_drop_versions_below_1_1_0() -> None:
    cfg = ConnectionConfig(versions=[(1, 1, 0), (1, 0, 0)], username="u", password="p")
    assert cfg.candidate_versions == ((1, 1, 0),)
    with pytest.raises(LocalProtocolError):
        ConnectionConfig(versions=[(1, 0, 0)], username="u", password="p")


def test_user_attributes_need_1_7_0() -> None:
    with pytest.raises(LocalProtocolError):
        ConnectionConfig(versions=[(1, 6, 0)], user_attributes={"a": "b"})
    cfg = ConnectionConfig(user_attributes={"a": "b"})
    assert cfg.candidate_versions == ((1, 7, 0),)
    assert 0 in cfg.handshake_features


@pytest.mark.parametrize(
    "config",
    [
        {"versions": []},
        {"versions": [(1, 7)]},
        {"versions": [(0, 0, 0)]},
        {"versions": [(1, 70000, 0)]},
        {"versions": 5},
        {"features": frozenset({-1})},
        {"features": frozenset({"2"})},
        {"features": 5},
        {"max_frame": 0},
        {"max_frame": 2**31},
        {"password": "p"},
        {"username": 5},
        {"user_attributes": {"a": 1}},
    ],
)
def test_invalid_configs(config: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        ConnectionConfig(**config)  # type: ignore[arg-type]
