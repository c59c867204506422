"""The stub's sans-IO request lifecycle (libclient/core.py) alone: no socket, no broker, no
clock.  Every transition of an exchange, every re-send rule and error message, reply
matching, the fork/ownership rules, holds, the link state and the connect backoff."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from libclient import core
from libclient.calls import Call
from libclient.core import (
    DONE,
    GRACE,
    IN_FLIGHT,
    LIVENESS_SLICE,
    TO_SEND,
    Backoff,
    ChannelState,
    Exchange,
    Hold,
    Link,
    Owner,
    pinned_refusal,
)
from libclient.exceptions import (
    BrokerProtocolError,
    BrokerTimeout,
    BrokerUnavailable,
    CacheError,
    ReconnectError,
    RequestTooLarge,
    SQLError,
)
from protocol.ipc import (
    REFUSED_SIZE,
    TOO_LARGE_LIMIT,
    Status,
    error_payload,
    not_processed_payload,
    pack_reply,
    unpack_request,
)

EP = "ipc:///nonexistent/broker.sock"
READ = Call("cache_get", {"cache": "c", "key": 1}, idempotent=True)
WRITE = Call("cache_put", {"cache": "c", "key": 1, "value": 2})


def exchange(call: Call = READ, start: float = 100.0, deadline: float = 102.0,
             retries: int = 2) -> Exchange:
    return Exchange(call, EP, start, deadline, retries)


def reply(ex: Exchange, status: int = 0, payload: object = "v") -> object:
    from protocol.ipc import unpack_reply

    return unpack_reply(pack_reply(ex.request_id, status, payload))


# -- the core does no I/O -------------------------------------------------------------------

def test_the_core_imports_no_io_modules():
    tree = ast.parse(Path(core.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert not imported & {"socket", "asyncio", "zmq", "threading", "time", "selectors",
                           "select"}


# -- an exchange: its frame and states ------------------------------------------------------

def test_a_new_exchange_is_to_send_with_a_frame_carrying_its_id_op_args_and_deadline():
    ex = exchange()
    assert ex.state is TO_SEND
    request = unpack_request(ex.frame)
    assert request.request_id == ex.request_id
    assert request.op == "cache_get" and request.args == {"cache": "c", "key": 1}
    assert request.deadline_ms > 0
    assert ex.reply_by == 102.0 + GRACE
    assert "cache_get" in repr(ex) and "TO_SEND" in repr(ex)


def test_request_ids_are_unique():
    assert len({exchange().request_id for _ in range(100)}) == 100


def test_sent_then_reply_is_the_result():
    ex = exchange()
    ex.sent()
    assert ex.state is IN_FLIGHT
    assert ex.reply_received(reply(ex, payload=[1, 2])) == [1, 2]
    assert ex.state is DONE


def test_an_error_reply_raises_the_calls_error_class():
    ex = exchange(Call("sql", idempotent=True, error=SQLError))
    ex.sent()
    with pytest.raises(SQLError, match="bad query"):
        ex.reply_received(reply(ex, status=4, payload={"message": "bad query"}))
    assert ex.state is DONE


def test_sending_twice_without_a_loss_is_a_driver_bug():
    ex = exchange()
    ex.sent()
    with pytest.raises(RuntimeError, match="sent twice"):
        ex.sent()


def test_not_sent_is_broker_unavailable_nothing_applied():
    ex = exchange(WRITE, start=10.0, deadline=13.0)
    with pytest.raises(BrokerUnavailable) as err:
        ex.not_sent()
    assert ex.state is DONE
    assert err.value.maybe_applied is False
    assert str(err.value).startswith(f"no broker reachable at {EP} within 3.0s")
    assert "no socket file at /nonexistent/broker.sock" in str(err.value)
    assert str(err.value).endswith("cache_put was not sent")


# -- losing the connection: what may be re-sent ----------------------------------------------

def test_a_read_is_re_sent_after_a_loss_while_re_sends_are_left():
    ex = exchange(READ, retries=2)
    for n in (1, 2):
        ex.sent()
        ex.connection_lost()
        assert ex.state is TO_SEND and ex.resends == n
    ex.sent()
    with pytest.raises(BrokerUnavailable) as err:
        ex.connection_lost()
    assert ex.state is DONE
    assert err.value.maybe_applied is None
    assert str(err.value) == (f"the broker at {EP} went away during cache_get (re-sent 2 "
                              "times); it is a read, nothing was changed")


def test_a_re_sent_read_keeps_its_id_and_frame():
    ex = exchange()
    frame, request_id = ex.frame, ex.request_id
    ex.sent()
    ex.connection_lost()
    assert (ex.frame, ex.request_id) == (frame, request_id)
    ex.sent()
    assert ex.reply_received(reply(ex)) == "v"


def test_a_write_is_never_re_sent_it_may_have_been_applied():
    ex = exchange(WRITE, retries=5)
    ex.sent()
    with pytest.raises(BrokerUnavailable) as err:
        ex.connection_lost()
    assert ex.state is DONE and ex.resends == 0
    assert err.value.maybe_applied is True
    assert str(err.value) == (f"the broker at {EP} went away after cache_put was sent: the "
                              "write may have been applied")


def test_a_read_of_an_open_transaction_is_never_re_sent_after_a_loss():
    """Its transaction ended with that connection: the next broker does not hold it."""
    hold = Hold(ChannelState(pid=7, now=0.0))
    hold.established = True
    ex = exchange(Call("cache_get", {"cache": "c", "key": 1, "tx": 3}, idempotent=True,
                       hold=hold), retries=5)
    ex.sent()
    with pytest.raises(BrokerUnavailable) as err:
        ex.connection_lost()
    assert ex.state is DONE and ex.resends == 0
    assert err.value.maybe_applied is False
    assert str(err.value) == (f"the broker at {EP} went away during cache_get: the cursor or "
                              "transaction it belongs to ended with that broker (not sent "
                              "again: the next broker does not hold it)")


def test_a_pinned_call_is_not_sent_once_the_connection_of_its_hold_ended():
    chan = ChannelState(pid=7, now=0.0)
    chan.connection = 3
    hold = Hold(chan)
    opening = exchange(Call("tx_start", {}, hold=hold))
    opening.check_hold(chan)  # not pinned yet: it may go anywhere
    opening.sent()
    opening.reply_received(reply(opening), chan.connection)
    assert hold.established and hold.connection == 3
    ex = exchange(Call("cache_put", {"cache": "c", "key": 1, "tx": 5}, hold=hold))
    ex.check_hold(chan)  # the same connection: sent
    chan.connection = 4  # a new connection: maybe another broker
    with pytest.raises(BrokerUnavailable) as err:
        ex.check_hold(chan)
    assert ex.state is DONE and err.value.maybe_applied is False
    assert str(err.value) == (f"the connection to the broker at {EP} that held the cursor or "
                              "transaction of cache_put has ended, and they with it: "
                              "cache_put was not sent")


def test_no_retries_means_a_read_fails_at_the_first_loss():
    ex = exchange(READ, retries=0)
    ex.sent()
    with pytest.raises(BrokerUnavailable, match=r"re-sent 0 times"):
        ex.connection_lost()


# -- waiting: slices and the deadline -------------------------------------------------------

def test_wait_gives_liveness_slices_then_the_rest_then_times_out():
    ex = exchange(READ, start=100.0, deadline=101.0)
    ex.sent()
    assert ex.wait(100.0) == LIVENESS_SLICE
    assert ex.wait(101.45) == pytest.approx(0.05)
    assert ex.state is IN_FLIGHT
    with pytest.raises(BrokerTimeout) as err:
        ex.wait(101.0 + GRACE)
    assert ex.state is DONE
    assert err.value.maybe_applied is None
    assert str(err.value) == f"no reply from the broker at {EP} to cache_get within 1.0s"


def test_a_write_that_times_out_may_have_been_applied():
    ex = exchange(WRITE, start=0.0, deadline=2.0)
    ex.sent()
    with pytest.raises(BrokerTimeout) as err:
        ex.timed_out()
    assert err.value.maybe_applied is True
    assert str(err.value) == (f"no reply from the broker at {EP} to cache_put within 2.0s: "
                              "the write may have been applied")


def test_time_left_includes_the_grace():
    ex = exchange(start=0.0, deadline=1.0)
    assert ex.time_left(0.25) == pytest.approx(1.25)
    assert ex.time_left(2.0) < 0


# -- a channel: replies, deferred frames, holds ---------------------------------------------

def test_a_reply_finds_the_waiter_of_its_request_in_flight():
    chan = ChannelState(pid=7, now=0.0)
    ex = exchange()
    chan.track(ex.request_id, "waiter", len(ex.frame))
    [(waiter, got)] = chan.reply_to(pack_reply(ex.request_id, 0, "v"))
    assert waiter == "waiter" and got.payload == "v"


def test_an_exchange_matches_only_its_own_reply():
    ex = exchange()
    assert ex.match(pack_reply(ex.request_id, 0, "v")).payload == "v"
    assert ex.match(pack_reply(ex.request_id + 1, 0, "pong")) is None
    with pytest.raises(BrokerProtocolError, match="malformed reply"):
        ex.match(b"\xc1")


def test_a_reply_nobody_waits_for_is_dropped():
    chan = ChannelState(pid=7, now=0.0)
    assert chan.reply_to(pack_reply(123456789, 0, "pong")) == []


# -- refusals the broker could not give a request id (request id 0) -------------------------

def _too_large(limit: object = 1000) -> bytes:
    payload = error_payload("bad_request", "request of 2000 bytes exceeds the broker's limit")
    if limit is not None:
        payload[TOO_LARGE_LIMIT] = limit
    return pack_reply(0, Status.TOO_LARGE, payload)


def test_a_too_large_reply_answers_exactly_the_frames_above_the_limit():
    chan = ChannelState(pid=7, now=0.0)
    chan.track(11, "small", 10)
    chan.track(12, "big", 1001)
    chan.track(13, "at-limit", 1000)
    chan.track(14, "bigger", 5000)
    matched = chan.reply_to(_too_large(1000))
    assert sorted(w for w, _ in matched) == ["big", "bigger"]
    assert all(r.status == Status.TOO_LARGE for _, r in matched)
    chan.untrack(12)
    chan.untrack(14)
    assert chan.reply_to(_too_large(1000)) == []  # no frame above it is in flight


def test_a_refusal_without_id_or_limit_answers_the_only_request_in_flight():
    chan = ChannelState(pid=7, now=0.0)
    chan.track(21, "only", 50)
    overloaded = pack_reply(0, Status.OVERLOADED, error_payload("overloaded", "budget"))
    assert [w for w, _ in chan.reply_to(overloaded)] == ["only"]
    assert [w for w, _ in chan.reply_to(_too_large(None))] == ["only"]
    chan.track(22, "second", 60)
    assert chan.reply_to(overloaded) == []  # cannot tell which: dropped (a timeout)


def test_a_refusal_naming_its_frame_size_answers_the_one_request_of_that_size():
    chan = ChannelState(pid=7, now=0.0)
    chan.track(41, "a", 1500)
    chan.track(42, "b", 2500)
    payload = error_payload("overloaded", "budget", maybe_applied=False)
    payload[REFUSED_SIZE] = 2500
    assert [w for w, _ in chan.reply_to(pack_reply(0, Status.OVERLOADED, payload))] == ["b"]
    chan.track(43, "c", 2500)  # two of that size: which one is unknowable, neither is failed
    assert chan.reply_to(pack_reply(0, Status.OVERLOADED, payload)) == []
    chan.untrack(42)
    chan.untrack(43)  # only "a" (1500) left: a refusal of another frame is not its answer
    assert chan.reply_to(pack_reply(0, Status.OVERLOADED, payload)) == []


def test_events_and_going_away_are_no_refusals():
    chan = ChannelState(pid=7, now=0.0)
    chan.track(31, "only", 10**6)
    assert chan.reply_to(pack_reply(0, Status.EVENT, {"sub": 1, "events": []})) == []
    assert chan.reply_to(pack_reply(0, Status.GOING_AWAY, not_processed_payload())) == []


def test_the_blocking_exchange_takes_a_too_large_reply_as_its_own_error():
    big = Exchange(Call("cache_put", {"cache": "c", "key": 1, "value": b"x" * 2000}), EP,
                   100.0, 102.0, 2)
    got = big.match(_too_large(1000))
    assert got is not None and got.status == Status.TOO_LARGE
    with pytest.raises(RequestTooLarge, match="exceeds the broker's limit"):
        big.reply_received(got)
    assert exchange().match(_too_large(1000)) is None  # a small frame is not the one refused


def test_a_malformed_reply_is_a_broker_protocol_error():
    chan = ChannelState(pid=7, now=0.0)
    with pytest.raises(BrokerProtocolError, match="malformed reply"):
        chan.reply_to(b"\x01\x02")


def test_deferred_frames_are_requests_with_their_own_ids():
    chan = ChannelState(pid=7, now=0.0)
    chan.defer("cursor_close", {"cursor": 5})
    chan.defer("cursor_close", {"cursor": 6})
    requests = [unpack_request(f) for f in chan.deferred]
    assert [r.args for r in requests] == [{"cursor": 5}, {"cursor": 6}]
    assert requests[0].request_id != requests[1].request_id
    assert "deferred=2" in repr(chan)


def test_holds_report_the_first_and_the_last():
    chan = ChannelState(pid=7, now=0.0)
    events: list[str] = []

    class Recording(Hold):
        def _first(self) -> None:
            events.append("first")

        def _last(self) -> None:
            events.append("last")

    a, b = Recording(chan), Recording(chan)
    assert chan.holds == 2 and events == ["first"]
    a.release()
    a.release()  # twice is once
    assert chan.holds == 1 and events == ["first"]
    b.defer("cursor_close", {"cursor": 1})
    assert len(chan.deferred) == 1
    b.release()
    assert chan.holds == 0 and events == ["first", "last"]


def test_a_ping_is_due_after_silence_on_an_open_channel_of_this_process():
    chan = ChannelState(pid=7, now=10.0)
    assert not chan.wants_ping(11.0, 2.0, 7)
    assert chan.wants_ping(12.0, 2.0, 7)
    assert not chan.wants_ping(12.0, 2.0, 8)  # a forked child never uses it
    chan.closed = True
    assert not chan.wants_ping(12.0, 2.0, 7)


# -- ownership: fork, loops, closed clients --------------------------------------------------

def test_a_pinned_call_is_refused_in_another_process_with_its_error_class():
    chan = ChannelState(pid=7, now=0.0)
    call = Call("cursor_next", error=SQLError)
    refusal = pinned_refusal(call, chan, pid=8)
    assert isinstance(refusal, SQLError)
    assert str(refusal) == ("cursor_next: this cursor or transaction belongs to process 7; "
                            "it does not survive fork()")


def test_a_pinned_call_is_refused_on_a_closed_channel_or_another_loop():
    chan = ChannelState(pid=7, now=0.0)
    call = Call("tx_end", error=CacheError)
    assert pinned_refusal(call, chan, pid=7) is None
    assert str(pinned_refusal(call, chan, 7, same_loop=False)) == (
        "tx_end: this cursor or transaction belongs to another event loop")
    chan.closed = True
    assert str(pinned_refusal(call, chan, pid=7)) == (
        "tx_end: the client that opened this cursor or transaction is closed")
    # asyncio reports a closed client with its closed-client error instead
    assert pinned_refusal(call, chan, pid=7, refuse_closed=False) is None
    # the process comes first
    assert "process 7" in str(pinned_refusal(call, chan, pid=9, same_loop=False))


def test_the_closed_client_error_says_how_to_reopen():
    err = core.closed_error("call connect() again")
    assert isinstance(err, ReconnectError)
    assert str(err) == "the client is closed: call connect() again"


def test_the_owner_reports_a_fork_once():
    owner = Owner(100)
    assert not owner.forked(100)
    assert owner.forked(200)
    assert not owner.forked(200)
    assert owner.pid == 200


# -- the link and the backoff ---------------------------------------------------------------

def test_the_link_flips_only_between_known_states():
    link = Link()
    assert link.describe(closed=False) == "new"
    assert not link.change(True)  # the first news is not a flip
    assert not link.change(True)
    assert link.change(False) and link.describe(False) == "lost"
    assert link.change(True) and link.describe(False) == "up"
    assert link.describe(closed=True) == "closed"
    link.forget()
    assert not link.change(False)


def test_the_backoff_doubles_to_its_cap_and_stops_at_the_deadline():
    backoff = Backoff()
    delays = [backoff.next_delay(0.0, 100.0) for _ in range(9)]
    assert delays == [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.25, 0.25, 0.25]
    assert Backoff().next_delay(0.0, 0.003) == 0.003  # the last try is made at the deadline
    assert Backoff().next_delay(0.5, 0.5) is None


def test_the_backoff_tries_until_the_whole_budget_is_spent():
    backoff, now, tries = Backoff(), 0.0, 1
    while (delay := backoff.next_delay(now, 0.5)) is not None:
        now += delay
        tries += 1
    assert now == pytest.approx(0.5)  # not 0.315, where the next full delay would overshoot
    assert tries == 8
