"""The log lines of requests answered with an error: one per refused request class (bad
request, too large, overloaded, deadline, ...), per write that may have been applied and
failed, and per request a node failed; each class rate-limited on its own."""

from __future__ import annotations

from typing import Any

from protocol.ipc import Status

from . import log
from .errors import brief, clip

_log = log.get("requests")

#: Answered without reaching the cluster, by the broker's choice or the worker's mistake.
_REFUSED = frozenset({Status.BAD_REQUEST, Status.UNKNOWN_OP, Status.UNSUPPORTED_VERSION,
                      Status.OVERLOADED, Status.DEADLINE_EXCEEDED, Status.TOO_LARGE,
                      Status.NOT_PROCESSED, Status.CLUSTER_UNAVAILABLE})
#: The longest reason a line carries (a node's message can run to 2 KiB).
_REASON_CHARS = 300
_KINDS = {status.value: status.name.lower() for status in Status}

_throttles: dict[tuple[str, str], log.Throttle] = {}


def answered(worker: bytes, op: str, status: int, payload: Any) -> None:
    """Log one error reply (``payload``: protocol.ipc.error_payload) if its class is worth a
    line and its throttle lets it through.  INTERNAL is logged where it happens, with the
    traceback (Dispatcher.internal_error)."""
    error = payload if type(payload) is dict else {}
    if error.get("maybe_applied"):  # sent, then lost: the worker cannot know whether it landed
        event, level = "write_failed", "warning"
    elif status in _REFUSED:
        event, level = "request_refused", "info"
    elif status == Status.SERVER_ERROR:
        event, level = "request_failed_at_node", "info"
    else:
        return
    kind = _KINDS.get(status, str(status))
    throttle = _throttles.get((event, kind))
    if throttle is None:
        throttle = _throttles[(event, kind)] = log.Throttle()
    held = throttle.allow()
    if held is None:
        return
    getattr(_log, level)(event, kind=kind, op=_op_name(op), worker=worker.hex(),
                         reason=clip(str(error.get("message", "")), _REASON_CHARS),
                         server_status=error.get("server_status"), suppressed=held)


def _op_name(op: Any) -> str:
    """The op as sent when it is a short str, else its type and size (a worker's 20,000
    characters are not echoed into every line)."""
    if isinstance(op, str) and len(op) <= 64:
        return op
    return brief(op)
