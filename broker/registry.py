"""The broker-wide binary-type registry: one copy of the cluster's type metadata for every
worker.  Types a worker writes are registered once (BINARY_TYPE_PUT) and known to all; schemas
the broker meets in answers are fetched once (BINARY_TYPE_GET).  Callback style, like the rest
of the request path: no task per request."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from protocol import ErrorResponse, OpCode, Response
from protocol.binary.metadata import (
    binary_type_get,
    binary_type_put,
    parse_binary_type_get,
)
from protocol.binary.registry import BinaryType, CodecContext, Registry

from . import log
from .errors import BrokerError, ClusterUnavailable, ConnectError, NodeError, public_node_message
from .pool import NodePool

Done = Callable[[BrokerError | None], None]


class UnknownType(BrokerError):
    """The cluster holds no metadata for the type asked for."""

_log = log.get("registry")


class BinaryTypes:
    """Owns the Registry and the shared codec context of the broker."""

    def __init__(self, pool: NodePool) -> None:
        self._pool = pool
        self.registry = Registry()
        # One context serves every request: the loop is single-threaded and each encode
        # (``codec.encode``) returns the types it needs registered, leaving none behind.
        self.codec = CodecContext(self.registry)
        self.fetched = 0
        self.registered = 0

    def __repr__(self) -> str:
        return f"<BinaryTypes types={len(self.registry)} fetched={self.fetched} " \
               f"registered={self.registered}>"

    def register(self, pending: list[BinaryType], done: Done) -> None:
        """PUT every pending type; ``done(None)`` once all are on the cluster and known here."""
        remaining = len(pending)
        failed: list[BrokerError] = []

        def answered(bt: BinaryType, outcome: object) -> None:
            nonlocal remaining
            remaining -= 1
            if isinstance(outcome, Response):
                self.registry.add(bt)
                self.registered += 1
                _log.info("binary_type_registered", type_name=bt.type_name, type_id=bt.type_id)
            else:
                failed.append(_error(outcome, f"registering binary type {bt.type_name}"))
            if remaining == 0:
                done(failed[0] if failed else None)

        try:
            conn = self._pool.pick()
            for bt in pending:
                conn.send(OpCode.BINARY_TYPE_PUT, binary_type_put(bt), partial(answered, bt))
        except BrokerError as exc:
            done(exc)

    def fetch(self, type_id: int, done: Done) -> None:
        """GET a type from the cluster into the registry."""

        def answered(outcome: object) -> None:
            if not isinstance(outcome, Response):
                done(_error(outcome, f"fetching binary type {type_id}"))
                return
            bt = parse_binary_type_get(outcome.body)
            if bt is None:
                done(UnknownType(f"the cluster does not know binary type {type_id}"))
                return
            self.registry.add(bt)
            self.fetched += 1
            done(None)

        try:
            self._pool.pick().send(OpCode.BINARY_TYPE_GET, binary_type_get(type_id), answered)
        except BrokerError as exc:
            done(exc)


def _error(outcome: object, what: str) -> BrokerError:
    """The error a worker gets when its request could not go on for want of a type: the
    request itself was not sent (a type is registered or fetched first)."""
    if isinstance(outcome, ErrorResponse):
        return NodeError(f"{what}: {public_node_message(outcome.message or '')}",
                         outcome.status)
    if isinstance(outcome, ConnectError):  # the node connection went away meanwhile
        return ClusterUnavailable(f"{what}: {outcome}", maybe_applied=False)
    if isinstance(outcome, BrokerError):
        return outcome
    return BrokerError(f"{what}: {outcome}")
