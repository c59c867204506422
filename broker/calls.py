"""Calls: one thin-client request on behalf of a worker until it is settled, and the Sender
that routes it to a node connection, registers the binary types it needs first, retries it on
another node when that is safe (the retry rule) and fetches a schema its answer lacks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from protocol import ErrorResponse, OpCode, ProtocolError, Response
from protocol.binary.registry import BinaryType
from protocol.errors import UnknownSchema
from protocol.ipc import Status

from . import log
from .errors import (
    BrokerError,
    ClusterUnavailable,
    DeadlineExceeded,
    NodeError,
    error_of,
    public_node_message,
)
from .nodeconn import ClosedByNode, ConnectionLost, NodeConnection, NotSent, Outcome
from .pool import NodePool
from .registry import BinaryTypes

ReplyFn = Callable[[int, Any], None]  # (status, payload), the request id bound: the one definition
InternalError = Callable[..., None]  # (event, exc, **context): counts and logs a broker bug

_log = log.get("dispatch")
_monotonic = time.monotonic
_OK = Status.OK  # an Enum class attribute lookup costs more than a module global

#: A call sent again after a node closed its connection may be the request that made it close
#: (Ignite closes the connection on a request it cannot parse): after this many such closes it
#: fails instead of closing one more shared connection. One retry keeps failover for a read
#: that was on a node going down.
MAX_CLOSED_BY_NODE = 2
#: Sends of one call at most (the first and its retries).
MAX_ATTEMPTS = 4
#: Schemas fetched for one answer at most before it is given up as undecodable.
MAX_SCHEMA_FETCHES = 8


class Call:
    """One thin-client request on behalf of a worker, kept until it is answered so that an
    idempotent one can be sent again to another node.  ``succeed`` and ``fail`` settle it
    (once); here they hand over to ``on_result`` and ``on_error``."""

    __slots__ = ("attempts", "body", "closed_by_node", "deadline", "idempotent", "key_pos",
                 "on_error", "on_result", "op", "pending_types", "pinned", "route_cache",
                 "schema_fetches", "sender")

    def __init__(
        self,
        op: OpCode,
        body: bytes,
        idempotent: bool,
        deadline: float,  # monotonic
        on_result: Callable[[Response], None] | None,
        on_error: Callable[[BrokerError], None] | None,
        pinned: NodeConnection | None = None,  # tx or cursor connection: no failover
        route_cache: int | None = None,  # with key_pos: route to the primary node of the key
        key_pos: int = -1,  # where the key starts in body (-1: not a keyed request)
        pending_types: list[BinaryType] | None = None,  # to register before the body is sent
    ) -> None:
        self.op = op
        self.body = body
        self.idempotent = idempotent
        self.deadline = deadline
        self.on_result = on_result
        self.on_error = on_error
        self.pinned = pinned
        self.route_cache = route_cache
        self.key_pos = key_pos
        self.pending_types = pending_types
        self.attempts = 0
        self.closed_by_node = 0  # connections a node closed while this call was on them
        self.schema_fetches = 0
        self.sender: Sender | None = None  # set when sent

    def __repr__(self) -> str:
        return (f"<Call {self.op.name} attempts={self.attempts} "
                f"pinned={self.pinned is not None} key_pos={self.key_pos}>")

    def succeed(self, response: Response) -> None:
        self.on_result(response)  # type: ignore[misc]

    def fail(self, exc: BrokerError) -> None:
        self.on_error(exc)  # type: ignore[misc]

    def settle(self, outcome: Outcome) -> None:
        """The node connection's callback."""
        self.sender.settle(self, outcome)  # type: ignore[union-attr]

    def may_resend(self) -> bool:
        """Whether a call that was not sent may go to another connection."""
        return (self.pinned is None and self.attempts < MAX_ATTEMPTS
                and _monotonic() < self.deadline)

    def may_retry(self) -> bool:
        """Whether a call that was sent and lost with its connection may be sent again: only
        a read, unpinned, within its deadline, and not on a request nodes keep closing on."""
        return (self.idempotent and self.closed_by_node < MAX_CLOSED_BY_NODE
                and self.may_resend())


class ReplyCall(Call):
    """simple_call's request: the parsed body of the answer, or the error, is the reply."""

    __slots__ = ("parse", "reply")

    def __init__(self, op: OpCode, body: bytes, idempotent: bool, deadline: float,
                 reply: ReplyFn, parse: Callable[[Any], Any], pinned: NodeConnection | None,
                 route_cache: int | None, key_pos: int,
                 pending_types: list[BinaryType] | None) -> None:
        super().__init__(op, body, idempotent, deadline, None, None, pinned, route_cache,
                         key_pos, pending_types)
        self.reply = reply
        self.parse = parse

    def succeed(self, response: Response) -> None:
        self.reply(_OK, self.parse(response.body))

    def fail(self, exc: BrokerError) -> None:
        self.reply(exc.status, error_of(exc))


class Sender:
    """Sends calls and settles them with their node's outcome."""

    def __init__(self, pool: NodePool, types: BinaryTypes, internal_error: InternalError) -> None:
        self._pool = pool
        self._types = types
        self._internal_error = internal_error

    def send(self, call: Call) -> None:
        """Send ``call`` to its pinned connection or a routed one; retry on another node when
        it is idempotent and the connection failed, until its deadline."""
        if call.pending_types:
            pending, call.pending_types = call.pending_types, None
            self._types.register(
                pending, lambda error: call.fail(error) if error else self.send(call))
            return
        try:
            if call.pinned is not None:
                conn = call.pinned
            elif call.key_pos >= 0 and call.attempts == 0:
                conn = self._pool.route(call.route_cache, call.body, call.key_pos)
            else:
                conn = self._pool.pick()
        except BrokerError as exc:
            call.fail(exc)
            return
        call.attempts += 1
        call.sender = self
        try:
            conn.send(call.op, call.body, call.settle, call.deadline, cache_id=call.route_cache)
        except ConnectionLost as exc:  # nothing was written: safe to try elsewhere
            if call.may_resend():
                self.send(call)
            else:
                call.fail(ClusterUnavailable(str(exc), maybe_applied=False))

    def settle(self, call: Call, outcome: Outcome) -> None:
        if isinstance(outcome, Response):
            self._answered(call, outcome)
        elif isinstance(outcome, ErrorResponse):
            _log.debug("node_error", op=call.op.name, status=outcome.status,
                       message=outcome.message)
            call.fail(NodeError(public_node_message(outcome.message or ""), outcome.status))
        elif isinstance(outcome, DeadlineExceeded):
            call.fail(outcome)
        elif isinstance(outcome, NotSent):  # it waited in the broker: safe to try elsewhere
            if call.may_resend():
                self.send(call)
            else:
                call.fail(ClusterUnavailable(str(outcome), maybe_applied=False))
        else:
            self._lost(call, outcome)

    def _answered(self, call: Call, response: Response) -> None:
        try:
            call.succeed(response)
        except UnknownSchema as exc:
            self._fetch_then_retry(call, response, exc)
        except ProtocolError as exc:  # answered INTERNAL, so counted like any other
            self._internal_error("undecodable_response", exc, op=call.op.name)
            call.fail(BrokerError("cannot decode the node's answer (the broker logged it)"))
        except Exception as exc:  # a broker bug in a parser: answered, counted, logged
            self._internal_error("answer_handling_failed", exc, op=call.op.name)
            call.fail(BrokerError("broker error while reading the node's answer "
                                  "(the broker logged it)"))

    def _lost(self, call: Call, outcome: Outcome) -> None:
        """The connection went away with the call on it: sent again when the retry rule
        allows, else failed saying whether it may have been applied."""
        if isinstance(outcome, ClosedByNode):
            call.closed_by_node += 1
        if call.may_retry():
            _log.info("retrying_on_another_node", op=call.op.name, reason=str(outcome))
            self.send(call)
            return
        maybe_applied = not call.idempotent
        what = "it may have been applied" if maybe_applied else "it was a read"
        if call.closed_by_node >= MAX_CLOSED_BY_NODE:
            what += (f"; {call.closed_by_node} node connections closed while it was on them, "
                     "so the broker does not send it again (a node closes the connection on a "
                     "request it cannot parse)")
        call.fail(ClusterUnavailable(f"{outcome} (the request was sent: {what})",
                                     maybe_applied=maybe_applied))

    def _fetch_then_retry(self, call: Call, response: Response, exc: UnknownSchema) -> None:
        """The answer holds an object whose schema we lack: fetch it once, decode again."""
        call.schema_fetches += 1
        if call.schema_fetches > MAX_SCHEMA_FETCHES:
            self._internal_error("undecodable_response", exc, op=call.op.name)
            call.fail(BrokerError(f"cannot decode the node's answer: {exc}"))
            return
        self._types.fetch(exc.type_id, lambda error: call.fail(error) if error
                          else self.settle(call, response))
