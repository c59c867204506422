"""The state table, and every (state, input) pair driven through a real connection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocol._connection
from protocol import (
    NEED_DATA,
    ClientConnection,
    ConnectionConfig,
    ConnectionState,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocol._state import TRANSITIONS, Trigger, next_state
from tests.protocol.protocol_helpers import (
    frame,
    handshake_fail,
    handshake_ok,
    response,
)

S = ConnectionState


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(ConnectionState)
    assert TRANSITIONS[S.ERROR] == {}


def test_protocol_error_reaches_error_from_anywhere() -> None:
    for state in ConnectionState:
        assert next_state(state, Trigger.PROTOCOL_ERROR) is S.ERROR


def test_every_live_state_can_close() -> None:
    for state in ConnectionState:
        if state is not S.ERROR:
            assert next_state(state, Trigger.EOF) is S.CLOSED


def test_the_connection_reports_every_trigger() -> None:
    """No trigger is in the table that the connection never reports (RESPONSE was one)."""
    source = Path(protocol._connection.__file__).read_text(encoding="utf-8")
    reported = set(re.findall(r"\bTrigger\.([A-Z_]+)", source))
    assert reported == {t.name for t in Trigger}


@pytest.mark.parametrize("state", list(ConnectionState))
@pytest.mark.parametrize("trigger", [t for t in Trigger if t is not Trigger.PROTOCOL_ERROR])
def test_unlisted_triggers_are_local_errors(state: ConnectionState, trigger: Trigger) -> None:
    if trigger in TRANSITIONS[state]:
        assert next_state(state, trigger) is TRANSITIONS[state][trigger]
    else:
        with pytest.raises(LocalProtocolError):
            next_state(state, trigger)


# Inputs a connection can get, in any order. Each must give an event, NEED_DATA, or a
# ProtocolError; Local errors must leave the state unchanged; Remote errors end in ERROR.
INPUTS = {
    "initiate": lambda c: c.initiate(),
    "send": lambda c: c.send_request(1000, b"\x65"),
    "accept": lambda c: c.receive_data(handshake_ok((1, 7, 0))),
    "reject-retry": lambda c: c.receive_data(handshake_fail((1, 6, 0), "old", 1)),
    "reject-final": lambda c: c.receive_data(handshake_fail((0, 0, 0), "auth", 2000)),
    "response-1": lambda c: c.receive_data(response(1, b"\x65")),
    "response-2": lambda c: c.receive_data(response(2, b"\x65")),
    "notification": lambda c: c.receive_data(response(9, notification=2007)),
    "garbage": lambda c: c.receive_data(frame(b"\xff\x00")),
    "half-frame": lambda c: c.receive_data(b"\x05\x00"),
    "eof": lambda c: c.receive_data(b""),
    "next": lambda c: c.next_event(),
}


@settings(max_examples=300)
@given(st.lists(st.sampled_from(sorted(INPUTS)), max_size=12))
def test_any_sequence_of_inputs(names: list[str]) -> None:
    conn = ClientConnection(ConnectionConfig(versions=[(1, 7, 0), (1, 6, 0)]))
    for name in [*names, "next", "next"]:
        before = conn.state
        try:
            result = INPUTS[name](conn)
        except LocalProtocolError:
            assert conn.state is before
        except RemoteProtocolError:
            assert conn.state is S.ERROR
        else:
            if name == "next" and result is not NEED_DATA:
                assert conn.state in TRANSITIONS[before].values() or conn.state is before
