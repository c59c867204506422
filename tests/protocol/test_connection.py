"""Requests and responses after the handshake, in both header layouts; EOF; fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    NEED_DATA,
    ClientConnection,
    ConnectionClosed,
    ConnectionConfig,
    ConnectionState,
    ErrorResponse,
    FrameTooLarge,
    LocalProtocolError,
    Notification,
    OpCode,
    ProtocolError,
    RemoteProtocolError,
    Response,
)
from tests.protocol.protocol_helpers import (
    chunkings,
    feed,
    frame,
    legacy_response,
    ready_connection,
    response,
)


def normalise(events: list[object]) -> list[object]:
    """Memoryview bodies compare by content."""
    out = []
    for e in events:
        if isinstance(e, Response):
            e = Response(e.request_id, bytes(e.body), e.affinity_version)
        out.append(e)
    return out


def send(conn: ClientConnection, n: int) -> list[int]:
    return [conn.send_request(OpCode.CACHE_GET, b"")[0] for _ in range(n)]


# -- requests ---------------------------------------------------------------------------------


def test_request_framing_and_ids() -> None:
    conn = ready_connection()
    rid, data = conn.send_request(OpCode.CACHE_GET, b"\x01\x02")
    assert rid == 1
    assert data.hex() == "0c000000" "e803" "0100000000000000" "0102"
    rid, data = conn.send_request(OpCode.CACHE_GET_NAMES, bytearray())
    assert rid == 2
    assert data.hex() == "0a000000" "1a04" "0200000000000000"
    rid, data = conn.send_request(1001, memoryview(b"\xff"))
    assert (rid, data[-1:]) == (3, b"\xff")
    assert conn.in_flight == 3


@pytest.mark.parametrize("state", ["idle", "handshaking"])
def test_requests_need_an_accepted_handshake(state: str) -> None:
    conn = ClientConnection()
    if state == "handshaking":
        conn.initiate()
    with pytest.raises(LocalProtocolError):
        conn.send_request(OpCode.CACHE_GET, b"")


def test_op_code_out_of_range() -> None:
    conn = ready_connection()
    with pytest.raises(LocalProtocolError):
        conn.send_request(70000, b"")
    with pytest.raises(LocalProtocolError):
        conn.send_request(OpCode.CACHE_GET, "not bytes")  # type: ignore[arg-type]
    assert conn.send_request(1, b"")[0] == 1  # the failed calls used no id
    assert conn.in_flight == 1


def test_initiate_twice_is_misuse() -> None:
    conn = ClientConnection()
    conn.initiate()
    with pytest.raises(LocalProtocolError):
        conn.initiate()
    assert conn.state is ConnectionState.HANDSHAKING


# -- responses, >= 1.4.0 ----------------------------------------------------------------------

V14_FRAMES = [
    response(1, b"\x65", topology=(5, 2)),  # the first response carries the topology flag
    response(3, b"\x03\x07\x00\x00\x00"),
    response(77, b"\x01\x02", notification=2007),
    response(2, error=(1000, "Cache does not exist: x")),
    response(4, error=(1, None), topology=(6, 0)),
    response(77, notification=6001, error=(1, "task failed")),
    response(5),
]
V14_EVENTS = [
    Response(1, b"\x65", (5, 2)),
    Response(3, b"\x03\x07\x00\x00\x00", None),
    Notification(77, 2007, b"\x01\x02", 0, None),
    ErrorResponse(2, 1000, "Cache does not exist: x", None),
    ErrorResponse(4, 1, "", (6, 0)),
    Notification(77, 6001, b"", 1, "task failed"),
    Response(5, b"", None),
]


@pytest.mark.parametrize("version", [(1, 4, 0), (1, 7, 0)])
@pytest.mark.parametrize("mode", ["whole", "bytewise", "halves"])
def test_responses_v14(version: tuple[int, int, int], mode: str) -> None:
    conn = ready_connection(version)
    send(conn, 5)
    events = feed(conn, dict(chunkings(b"".join(V14_FRAMES)))[mode])
    assert normalise(events) == V14_EVENTS
    assert conn.in_flight == 0
    assert conn.state is ConnectionState.READY


def test_trailing_bytes_wait_for_the_next_frame() -> None:
    conn = ready_connection()
    send(conn, 2)
    second = response(2, b"\x65")
    events = feed(conn, [response(1, b"\x65") + second[:9]])
    assert normalise(events) == [Response(1, b"\x65", None)]
    assert conn.next_event() is NEED_DATA
    assert normalise(feed(conn, [second[9:]])) == [Response(2, b"\x65", None)]


def test_out_of_order_responses() -> None:
    conn = ready_connection()
    assert send(conn, 3) == [1, 2, 3]
    events = feed(conn, [response(3, b"c"), response(1, b"a"), response(2, b"b")])
    assert [(e.request_id, bytes(e.body)) for e in events] == [(3, b"c"), (1, b"a"), (2, b"b")]


def test_notification_does_not_complete_a_request() -> None:
    conn = ready_connection()
    send(conn, 1)
    # A notification for resource 1 may overtake the response that created the resource.
    events = feed(conn, [response(1, b"n", notification=2007), response(1, b"r")])
    assert normalise(events) == [Notification(1, 2007, b"n"), Response(1, b"r", None)]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(response(9, b""), id="unknown-id"),
        pytest.param(response(1) + response(1), id="duplicate-response"),
        pytest.param(response(1, extra_flags=0x8), id="unknown-flag"),
        pytest.param(frame(b"\x01\x00\x00\x00\x00"), id="short-header"),
        pytest.param(frame(struct.pack("<qh", 1, 2) + b"\x00" * 5), id="short-topology"),
        pytest.param(frame(struct.pack("<qh", 1, 4) + b"\x00"), id="short-notification-op"),
        pytest.param(frame(struct.pack("<qhi", 1, 1, 1)), id="missing-error-message"),
        pytest.param(frame(struct.pack("<qhi", 1, 1, 1) + b"\x03\x00\x00\x00\x00"),
                     id="error-message-not-string"),
        pytest.param(struct.pack("<i", -5), id="negative-length"),
    ],
)
def test_malformed_v14(data: bytes) -> None:
    conn = ready_connection()
    send(conn, 1)
    with pytest.raises(RemoteProtocolError):
        feed(conn, [data])
    assert conn.state is ConnectionState.ERROR
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_error_message_may_be_followed_by_details() -> None:
    conn = ready_connection()
    send(conn, 1)
    data = frame(struct.pack("<qhi", 1, 1, 1000) + b"\x65" + b"future-details")
    assert feed(conn, [data]) == [ErrorResponse(1, 1000, "", None)]


def test_frame_too_large() -> None:
    conn = ready_connection(max_frame=64)
    send(conn, 2)
    events = feed(conn, [response(1, b"x" * 54)])  # exactly 64 payload bytes
    assert len(events) == 1
    with pytest.raises(FrameTooLarge):
        feed(conn, [response(2, b"x" * 55)])
    assert conn.state is ConnectionState.ERROR


# -- responses, < 1.4.0 -----------------------------------------------------------------------

LEGACY_FRAMES = [
    legacy_response(2, b"\x65"),
    legacy_response(1, status=1000, message="Cache does not exist"),
    legacy_response(3, status=1, message=None),
    legacy_response(4),
]
LEGACY_EVENTS = [
    Response(2, b"\x65", None),
    ErrorResponse(1, 1000, "Cache does not exist", None),
    ErrorResponse(3, 1, "", None),
    Response(4, b"", None),
]


@pytest.mark.parametrize("version", [(1, 0, 0), (1, 3, 0)])
@pytest.mark.parametrize("mode", ["whole", "bytewise", "halves"])
def test_responses_legacy(version: tuple[int, int, int], mode: str) -> None:
    conn = ready_connection(version)
    send(conn, 4)
    events = feed(conn, dict(chunkings(b"".join(LEGACY_FRAMES)))[mode])
    assert normalise(events) == LEGACY_EVENTS


def test_legacy_flags_are_not_interpreted() -> None:
    # Below 1.4.0 the i16 after the id is the low half of the i32 status.
    conn = ready_connection((1, 3, 0))
    send(conn, 1)
    [event] = feed(conn, [frame(struct.pack("<qi", 1, 2) + b"\x65")])
    assert event == ErrorResponse(1, 2, "", None)


# -- EOF --------------------------------------------------------------------------------------


def test_eof_on_a_frame_boundary() -> None:
    conn = ready_connection()
    send(conn, 1)
    events = feed(conn, [response(1, b"\x65"), b""])
    assert normalise(events) == [Response(1, b"\x65", None), ConnectionClosed()]
    assert conn.state is ConnectionState.CLOSED
    assert conn.next_event() == ConnectionClosed()
    conn.receive_data(b"")  # a second EOF is harmless
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"late")


@pytest.mark.parametrize("cut", [1, 3, 4, 11])
def test_eof_mid_frame(cut: int) -> None:
    conn = ready_connection()
    send(conn, 1)
    with pytest.raises(RemoteProtocolError, match="middle of a frame"):
        feed(conn, [response(1, b"\x65")[:cut], b""])
    assert conn.state is ConnectionState.ERROR


@pytest.mark.parametrize("initiated", [False, True])
def test_eof_before_the_handshake_completes(initiated: bool) -> None:
    conn = ClientConnection()
    if initiated:
        conn.initiate()
    assert feed(conn, [b""]) == [ConnectionClosed()]
    assert conn.state is ConnectionState.CLOSED


def test_unsolicited_frame_before_initiate() -> None:
    conn = ClientConnection()
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        feed(conn, [frame(b"\x01")])


def test_repr_is_informative() -> None:
    conn = ready_connection()
    send(conn, 2)
    assert repr(conn) == "<ClientConnection state=READY version=1.7.0 in_flight=2>"


# -- fuzzing: only events or ProtocolError ----------------------------------------------------


def _feed_fuzz(conn: ClientConnection, chunks: list[bytes]) -> None:
    try:
        for chunk in [*chunks, b""]:
            conn.receive_data(chunk)
            while conn.next_event() not in (NEED_DATA, ConnectionClosed()):
                pass
    except ProtocolError:
        pass


@pytest.mark.parametrize("version", [(1, 7, 0), (1, 3, 0)])
@given(chunks=st.lists(st.binary(max_size=48), max_size=6))
def test_fuzz_after_handshake(version: tuple[int, int, int], chunks: list[bytes]) -> None:
    conn = ready_connection(version, max_frame=1024)
    send(conn, 3)
    _feed_fuzz(conn, chunks)


@given(
    request_id=st.integers(0, 4),
    flags=st.integers(0, 0xF),
    tail=st.binary(max_size=40),
)
def test_fuzz_structured_responses(request_id: int, flags: int, tail: bytes) -> None:
    conn = ready_connection()
    send(conn, 3)
    _feed_fuzz(conn, [frame(struct.pack("<qh", request_id, flags) + tail)])


@given(st.binary(max_size=64))
def test_fuzz_handshake_response(data: bytes) -> None:
    conn = ClientConnection(ConnectionConfig())
    conn.initiate()
    _feed_fuzz(conn, [frame(data)])
