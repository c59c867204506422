"""The IPC envelope as the stub uses it: packing requests, reading replies, turning a reply into
a result or an exception.  protocol.ipc is imported on first use, so ``import libclient``
stays light; msgpack errors never leave this module untranslated."""

from __future__ import annotations

import itertools
import os
import time

from .exceptions import BrokerProtocolError, ParameterError, error_from_reply

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .calls import Call

_request_ids = itertools.count(1)
_socket_ids = itertools.count(1)
_session: tuple[int, bytes] | None = None
_ipc: Any = None


def ipc() -> Any:
    """protocol.ipc, imported once."""
    global _ipc
    if _ipc is None:
        import protocol.ipc

        _ipc = protocol.ipc
    return _ipc


def routing_id() -> bytes:
    """A routing id for a new socket: this process's session + a socket number.

    The broker groups sockets by their 16-byte session prefix (first byte non-zero), so
    traffic on any socket of a process (its heartbeat included) keeps all of them alive.  A
    forked child gets a session of its own.
    """
    global _session
    pid = os.getpid()
    if _session is None or _session[0] != pid:
        raw = bytearray(os.urandom(ipc().SESSION_BYTES))
        raw[0] |= 0x80
        _session = (pid, bytes(raw))
    return _session[1] + next(_socket_ids).to_bytes(4, "big")


def next_request_id() -> int:
    return next(_request_ids)  # itertools.count is atomic under the GIL


def deadline_ms(budget: float) -> int:
    """The absolute deadline the broker gets: ms since the epoch, ``budget`` seconds away."""
    return int((time.time() + max(budget, 0.0)) * 1000)


def pack_request(request_id: int, op: str, args: dict[str, Any], deadline: int) -> bytes:
    m = ipc()
    try:
        packed: bytes = m.pack_request(request_id, op, args, deadline)
        return packed
    except m.IpcError as exc:
        raise ParameterError(f"cannot send this value to the broker: {exc}") from exc


def unpack_reply(frame: bytes) -> Any:
    m = ipc()
    try:
        return m.unpack_reply(frame)
    except m.IpcError as exc:
        raise BrokerProtocolError(f"malformed reply from the broker: {exc}") from exc


def result_of(reply: Any, call: Call) -> Any:
    """The op's result for an OK reply; the mapped exception otherwise."""
    if reply.status == 0:
        return reply.payload
    raise error_from_reply(reply.status, reply.payload, call.error, call.op)
