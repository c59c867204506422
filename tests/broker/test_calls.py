"""Calls and the Sender over fake nodes (no JVM): the retry rule, and the binary types an
encode returns registered on the cluster before the request that needs them is sent."""

from __future__ import annotations

import time
from typing import Any

import pytest

from broker.calls import MAX_ATTEMPTS, MAX_CLOSED_BY_NODE, Call
from broker.errors import BrokerError
from protocol import LocalProtocolError, OpCode, Response, cache_id, ops
from protocol.binary.complex import new_object
from protocol.binary.registry import CodecContext, Registry
from protocol.binary.values import BinaryObject
from tests.broker.fakenode import Harness, run


def _call(idempotent: bool, **kw: Any) -> Call:
    return Call(OpCode.CACHE_GET, b"", idempotent, time.monotonic() + 60, None, None, **kw)


@run
async def test_the_retry_rule_sends_again_only_unpinned_reads_within_their_limits():
    assert _call(True).may_retry()
    assert not _call(False).may_retry()  # a write may have been applied
    assert _call(False).may_resend()  # ... but one never sent may go elsewhere
    h = await Harness(1).start()
    pinned = _call(True, pinned=h.pool.ready[0])  # a transaction's or cursor's connection
    assert not pinned.may_retry() and not pinned.may_resend()
    await h.close()
    closing = _call(True)
    closing.closed_by_node = MAX_CLOSED_BY_NODE
    assert not closing.may_retry() and closing.may_resend()
    tried = _call(True)
    tried.attempts = MAX_ATTEMPTS
    assert not tried.may_retry() and not tried.may_resend()
    late = Call(OpCode.CACHE_GET, b"", True, time.monotonic() - 1, None, None)
    assert not late.may_retry() and not late.may_resend()


def test_an_encode_returns_the_types_it_needs_and_leaves_nothing_behind():
    codec = CodecContext(Registry())
    person = new_object("test.Person", {"name": "Ann"})
    body, types = codec.encode(ops.cache_put, 1, 1, person)
    assert [t.type_name for t in types or []] == ["test.Person"] and body
    assert codec.encode(ops.cache_put, 1, 1, "plain") == (ops.cache_put(1, 1, "plain"), None)
    with pytest.raises(LocalProtocolError):  # the second object's type has no name
        codec.encode(ops.cache_put, 1, 1, [new_object("test.Other", {"a": 1}),
                                            BinaryObject(12345, {})])
    assert codec.pending == {}  # the first object's type did not stay for the next request


@run
async def test_the_types_a_put_needs_are_registered_before_the_put_is_sent():
    h = await Harness(1).start()
    codec = h.dispatcher.codec
    person = new_object("test.Person", {"name": "Ann"})
    body, types = codec.encode(ops.cache_put, cache_id("ops-kv"), 1, person)
    answers: list[Any] = []

    def failed(exc: BrokerError) -> None:
        answers.append(exc)

    h.dispatcher.call(Call(OpCode.CACHE_PUT, body, False, time.monotonic() + 60,
                           answers.append, failed, pending_types=types))
    await h.until(lambda: bool(answers))
    assert isinstance(answers[0], Response), answers
    sent = h.nodes[0].ops()
    assert sent.index(OpCode.BINARY_TYPE_PUT) < sent.index(OpCode.CACHE_PUT)
    assert codec.registry.get(person.type_id) is not None
    assert codec.encode(ops.cache_put, cache_id("ops-kv"), 1, person)[1] is None  # known now
    await h.close()


def test_an_answer_the_broker_cannot_decode_is_answered_internal_and_counted():
    from broker.calls import Sender
    from protocol import RemoteProtocolError
    from protocol.ipc import Status

    def undecodable(response: Response) -> None:
        raise RemoteProtocolError("a node answer of a shape the parser does not know")

    bugs: list[str] = []
    errors: list[BrokerError] = []
    sender = Sender(None, None, lambda event, exc, **context: bugs.append(event))  # type: ignore[arg-type]
    call = Call(OpCode.CACHE_GET_NAMES, b"", True, time.monotonic() + 60, undecodable,
                errors.append)
    sender._answered(call, Response(1, OpCode.CACHE_GET_NAMES, b"\x00"))
    assert bugs == ["undecodable_response"]  # counted in internal_errors, logged once
    assert [e.status for e in errors] == [Status.INTERNAL]
