"""The connection state machine, as a table: which trigger moves which state where.

Theory of operation
-------------------
Everything that decides a state transition lives in this file; the connection object only
reports triggers and asks for the next state. Two rules keep it honest:

1. The table knows nothing about bytes. The connection decides *which* trigger happened
   (for example that a handshake failure was retryable); this table decides what it means.
2. A trigger not listed for the current state is a misuse by the caller (calling
   ``send_request`` before the handshake, ``initiate`` twice...) and raises
   LocalProtocolError without changing state. Broken bytes from the server are not a
   trigger the caller can avoid: PROTOCOL_ERROR moves any state to ERROR, which is final.

The life of a connection:

    IDLE --SEND_HANDSHAKE--> HANDSHAKING --ACCEPTED--> READY --SEND_REQUEST--> READY
                                 |    ^
                 REJECTED_RETRY  |    |  SEND_HANDSHAKE   (same socket, lower version)
                                 v    |
                             HANDSHAKE_RETRY
                 HANDSHAKING --REJECTED--> REJECTED       (auth failure, no common version)

Responses and notifications change no state, so they are no trigger: the connection reads
each frame with the reader of its state (in READY, a response; in a state expecting nothing,
a PROTOCOL_ERROR).

EOF from the server moves every live state to CLOSED (a partial frame at EOF is a
PROTOCOL_ERROR instead). Ignite does not close the socket after a failed handshake, which
is why HANDSHAKE_RETRY exists: the Java client re-sends the handshake with the version
the server proposed on the same socket, and so do we.
"""

from __future__ import annotations

from enum import Enum

from .errors import LocalProtocolError

__all__ = ["TRANSITIONS", "ConnectionState", "Trigger", "next_state"]


class ConnectionState(Enum):
    """Where a ClientConnection is in its life."""

    IDLE = "IDLE"  # created, nothing sent
    HANDSHAKING = "HANDSHAKING"  # handshake sent, answer pending
    HANDSHAKE_RETRY = "HANDSHAKE_RETRY"  # rejected, a lower version may be tried
    READY = "READY"  # handshake accepted: requests and responses flow
    REJECTED = "REJECTED"  # rejected for good
    CLOSED = "CLOSED"  # the server closed the connection
    ERROR = "ERROR"  # the server broke the protocol; nothing more can be parsed


class Trigger(Enum):
    """Things that happen to a connection."""

    SEND_HANDSHAKE = "SEND_HANDSHAKE"
    ACCEPTED = "ACCEPTED"
    REJECTED_RETRY = "REJECTED_RETRY"
    REJECTED = "REJECTED"
    SEND_REQUEST = "SEND_REQUEST"
    EOF = "EOF"
    PROTOCOL_ERROR = "PROTOCOL_ERROR"


_S = ConnectionState
_T = Trigger

# state -> {trigger: next state}. PROTOCOL_ERROR is handled in next_state (from anywhere).
TRANSITIONS: dict[ConnectionState, dict[Trigger, ConnectionState]] = {
    _S.IDLE: {_T.SEND_HANDSHAKE: _S.HANDSHAKING, _T.EOF: _S.CLOSED},
    _S.HANDSHAKING: {
        _T.ACCEPTED: _S.READY,
        _T.REJECTED_RETRY: _S.HANDSHAKE_RETRY,
        _T.REJECTED: _S.REJECTED,
        _T.EOF: _S.CLOSED,
    },
    _S.HANDSHAKE_RETRY: {_T.SEND_HANDSHAKE: _S.HANDSHAKING, _T.EOF: _S.CLOSED},
    _S.READY: {_T.SEND_REQUEST: _S.READY, _T.EOF: _S.CLOSED},
    _S.REJECTED: {_T.EOF: _S.CLOSED},
    _S.CLOSED: {_T.EOF: _S.CLOSED},
    _S.ERROR: {},
}


def next_state(state: ConnectionState, trigger: Trigger) -> ConnectionState:
    """The state ``trigger`` leads to from ``state``; LocalProtocolError if not allowed."""
    if trigger is Trigger.PROTOCOL_ERROR:
        return ConnectionState.ERROR
    allowed = TRANSITIONS[state]
    if trigger not in allowed:
        raise LocalProtocolError(f"{trigger.value} is not allowed in state {state.value}")
    return allowed[trigger]
