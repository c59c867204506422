"""The broker's isolation pieces that need no JVM: every answer releases its admission slot
exactly once, the memory budget and its shares, learned answer sizes, throttled logs, and what
a node's error message may show a worker."""

from __future__ import annotations

import asyncio
import time

import pytest

from broker import bounds, cachechanges, sqlhead
from broker.budget import MemoryBudget, ReplySizes
from broker.cachechanges import Serial
from broker.dispatch import Dispatcher
from broker.errors import MAX_ERROR_MESSAGE, BadRequest, brief, clip, public_node_message
from broker.handlers import HANDLERS
from broker.limits import Limits
from broker.log import Throttle
from broker.pool import NodePool
from broker.workers import Workers
from protocol import ConnectionConfig, OpCode
from protocol.binary import TypeCode
from protocol.binary.values import Typed
from protocol.ipc import Request, Status


def _dispatcher(**limits: int) -> Dispatcher:
    pool = NodePool([("127.0.0.1", 1)], ConnectionConfig(), ssl_context=None, connect_timeout=1)
    return Dispatcher(pool, Workers(), lambda: {}, Limits(**limits), handlers=HANDLERS)


def _boom(*_: object) -> None:
    raise TypeError("a secret detail of the bug")


def test_a_handler_bug_is_answered_internal_and_releases_its_slots():
    dispatcher = _dispatcher(max_in_flight_total=4, max_in_flight_per_worker=2)
    dispatcher._handlers["ping"] = _boom  # ping runs even with no node reachable
    replies: list[tuple[int, int, dict]] = []
    for n in range(1000):  # far more than the in-flight limits: none may leak
        dispatcher.dispatch(b"w", Request(n, "ping", 0, {}),
                            lambda rid, status, payload: replies.append((rid, status, payload)))
    assert [r[0] for r in replies] == list(range(1000))
    assert {r[1] for r in replies} == {Status.INTERNAL}
    assert all("secret detail" not in r[2]["message"] for r in replies)
    assert dispatcher.in_flight == 0
    assert dispatcher.internal_errors == 1000


def test_a_second_answer_to_one_request_is_dropped_and_counted():
    dispatcher = _dispatcher()

    def answer_twice(dispatcher, worker, request, reply):
        reply(Status.OK, 1)
        reply(Status.OK, 2)

    dispatcher._handlers["ping"] = answer_twice
    replies: list[object] = []
    dispatcher.dispatch(b"w", Request(7, "ping", 0, {}), lambda *r: replies.append(r))
    assert replies == [(7, Status.OK, 1)]
    assert dispatcher.in_flight == 0
    assert dispatcher.internal_errors == 1


def test_the_memory_budget_counts_requests_and_buffers_per_worker():
    budget = MemoryBudget(total=100, per_worker=60)
    woken: list[str] = []
    budget.take_request(b"a", 1, 30)
    budget.take_request(b"a", 1, 20)  # a reused id in flight: each request is held
    budget.buffered(b"b", 40)
    assert (budget.held, budget.worker_held(b"a"), budget.worker_held(b"b")) == (90, 50, 40)
    assert not budget.fits(20)
    budget.wait("reader", lambda: woken.append("reader"))
    budget.wait("closed", lambda: woken.append("closed"))
    budget.stop_waiting("closed")  # a connection that closed while it waited
    budget.release_request(b"a", 1)
    assert woken == ["reader"] and budget.worker_held(b"a") in (20, 30)
    budget.release_request(b"a", 1)
    budget.release_request(b"a", 1)  # a third answer to that id frees nothing more
    assert budget.held == 40
    budget.forget(b"b")
    assert budget.held == 0 and budget.worker_held(b"b") == 0


def test_the_budget_says_when_it_becomes_spent():
    budget = MemoryBudget(total=10, per_worker=10)
    spent: list[int] = []
    budget.on_exhausted = lambda: spent.append(budget.held)
    budget.buffered(b"a", 6)
    budget.buffered(b"a", 6)
    budget.buffered(b"a", 1)  # already spent: said once
    assert spent == [12]


def test_answer_sizes_are_learned_per_op_and_cache_and_decay():
    sizes = ReplySizes(cold_guess=1000)
    assert sizes.expect(OpCode.CACHE_GET, 5) == 1000  # pessimistic until seen
    assert sizes.expect(OpCode.CACHE_PUT, 5) == 0  # answers without values cost nothing
    sizes.seen(OpCode.CACHE_GET, 5, 10)
    assert sizes.expect(OpCode.CACHE_GET, 5) == 10
    sizes.seen(OpCode.CACHE_GET, 5, 1 << 20)
    for _ in range(400):
        sizes.seen(OpCode.CACHE_GET, 5, 10)
    assert 10 <= sizes.expect(OpCode.CACHE_GET, 5) < 1 << 10


def test_a_throttle_lets_a_burst_through_then_counts():
    now = [0.0]
    throttle = Throttle(burst=3, interval=10.0, clock=lambda: now[0])
    assert [throttle.allow() for _ in range(5)] == [0, 0, 0, None, None]
    now[0] = 10.0
    assert throttle.allow() == 2  # the next line says how many were held back


def test_node_error_messages_lose_stack_traces_and_addresses():
    message = ("Failed to run query: Table \"T\" not found; node "
               "3f1b2c4d-1111-2222-3333-444455556666 at /10.1.2.3:47500\n"
               "\tat org.apache.ignite.Foo.bar(Foo.java:1)\nCaused by: x")
    shown = public_node_message(message)
    assert shown == ("Failed to run query: Table \"T\" not found; node "
                     "3f1b2c4d-1111-2222-3333-444455556666 at <address>")
    assert len(public_node_message("x" * 10_000)) < MAX_ERROR_MESSAGE + 50


def test_worker_values_in_messages_are_named_not_echoed():
    assert brief("op") == "'op'"
    assert brief("x" * 10_000) == "<str of length 10000>"
    assert brief([b"t"] * 1000) == "<list of length 1000>"
    assert clip("y" * (MAX_ERROR_MESSAGE + 88)).endswith("(88 more characters)")


def test_cache_starts_and_stops_go_one_at_a_time_in_order():
    serial = Serial()
    sent: list[str] = []
    answers: list[tuple[str, int]] = []
    dones: dict[str, object] = {}

    def send_as(name: str):
        def send(done):
            sent.append(name)
            dones[name] = done
        return send

    far = time.monotonic() + 60
    for name in ("a", "b", "c"):
        serial.submit(far, send_as(name),
                      lambda status, payload, name=name: answers.append((name, status)))
    assert sent == ["a"] and len(serial) == 3
    dones["a"](Status.OK, None)
    assert sent == ["a", "b"]
    dones["b"](Status.SERVER_ERROR, {})
    dones["c"](Status.OK, None)
    assert answers == [("a", Status.OK), ("b", Status.SERVER_ERROR), ("c", Status.OK)]
    assert len(serial) == 0


def test_a_waiting_cache_start_past_its_deadline_is_not_sent():
    serial = Serial()
    dones: list[object] = []
    answers: list[int] = []
    serial.submit(time.monotonic() + 60, dones.append, lambda status, payload: None)
    serial.submit(time.monotonic() - 1, lambda done: dones.append(done),
                  lambda status, payload: answers.append(status))
    dones[0](Status.OK, None)
    assert answers == [Status.DEADLINE_EXCEEDED] and len(dones) == 1 and len(serial) == 0


def test_a_cache_start_that_fails_to_send_does_not_block_the_next():
    serial = Serial()
    with pytest.raises(RuntimeError):
        serial.submit(time.monotonic() + 60, _raise_runtime, lambda status, payload: None)
    sent: list[object] = []
    serial.submit(time.monotonic() + 60, sent.append, lambda status, payload: None)
    assert len(sent) == 1


def _raise_runtime(done: object) -> None:
    raise RuntimeError("send failed")


def test_a_cache_start_that_fails_in_its_turn_is_answered_and_the_next_goes():
    """Sent in its turn from another start's reply, a send that raises has no caller to
    answer it: on_failure does, and the starts behind it still go."""
    failures: list[tuple[str, object]] = []

    def on_failure(exc: Exception, reply) -> None:
        failures.append((str(exc), reply))
        reply(Status.INTERNAL, {})

    serial = Serial(on_failure=on_failure)
    dones: list[object] = []
    answers: list[tuple[str, int]] = []
    far = time.monotonic() + 60
    serial.submit(far, dones.append, lambda status, payload: answers.append(("a", status)))
    serial.submit(far, _raise_runtime, lambda status, payload: answers.append(("b", status)))
    serial.submit(far, dones.append, lambda status, payload: answers.append(("c", status)))
    dones[0](Status.OK, None)  # a's reply lets b go, whose send raises; then c goes
    assert [message for message, _ in failures] == ["send failed"]
    assert answers == [("a", Status.OK), ("b", Status.INTERNAL)] and len(dones) == 2
    dones[1](Status.OK, None)
    assert answers[-1] == ("c", Status.OK) and len(serial) == 0


def test_one_workers_waiting_cache_changes_do_not_hold_back_anothers():
    serial = Serial()
    sent: list[str] = []
    dones: list[object] = []

    def send_as(name: str):
        def send(done):
            sent.append(name)
            dones.append(done)
        return send

    far = time.monotonic() + 60
    for i in range(4):  # a churning worker queues four
        serial.submit(far, send_as(f"hostile{i}"), lambda status, payload: None, b"hostile")
    serial.submit(far, send_as("good"), lambda status, payload: None, b"good")
    assert sent == ["hostile0"]  # sent before good asked
    dones[0](Status.OK, None)
    assert sent == ["hostile0", "good"]  # hostile's other three waited longer: good goes first
    dones[1](Status.OK, None)
    assert sent == ["hostile0", "good", "hostile1"]
    dones[2](Status.OK, None)
    assert sent[-1] == "hostile2"


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_changes_hold_the_cluster_at_most_their_share(monkeypatch):
    asyncio.run(_cache_changes_share(monkeypatch))


async def _cache_changes_share(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(cachechanges, "_monotonic", clock)
    serial = Serial(duty=0.1, burst=0.2)
    sent: list[str] = []
    dones: list[object] = []
    answers: list[tuple[str, int]] = []

    def submit(name: str, deadline: float) -> None:
        def send(done):
            sent.append(name)
            dones.append(done)
        serial.submit(deadline, send, lambda status, payload: answers.append((name, status)),
                      name.encode())

    submit("a", clock.now + 60)
    submit("b", clock.now + 60)
    submit("c", clock.now + 5)  # its deadline passes while it waits for the share
    assert sent == ["a"]
    clock.now += 1.0  # "a" held the cluster 1 s: 0.8 s over its credit, 8 s at a 10% share
    dones[0](Status.OK, None)
    assert sent == ["a"] and serial.waits == 1
    clock.now += 7.9
    serial._next()  # what the timer does
    assert sent == ["a"]
    assert answers == [("a", Status.OK), ("c", Status.DEADLINE_EXCEEDED)]  # not sent
    clock.now += 0.2
    serial._next()
    assert sent == ["a", "b"] and serial.held_seconds == pytest.approx(1.0)
    assert serial._timer is None


def test_cache_changes_waiting_behind_an_unanswered_one_are_answered_at_their_deadline():
    """Was (1,000,000-input fuzz run, a hung cluster): starts and stops waiting behind one sent
    to a node that never answered were only looked at when it ended, after their deadlines."""
    serial = Serial()
    dones: list[object] = []
    answers: list[int] = []
    serial.submit(time.monotonic() + 60, dones.append, lambda status, payload: None)
    serial.submit(time.monotonic() + 0.01, dones.append,
                  lambda status, payload: answers.append(status), b"other")
    serial.expire(time.monotonic() + 1)  # the janitor's sweep, the first still unanswered
    assert answers == [Status.DEADLINE_EXCEEDED] and len(dones) == 1 and len(serial) == 1


_HEAD = sqlhead.HEAD


@pytest.mark.parametrize(("query", "starts_or_stops"), [
    ("CREATE TABLE t (id INT PRIMARY KEY)", True),
    ("drop table if exists t", True),
    ("  /* a */ -- b\n create\n/**/TABLE t", True),
    ("Create/**/Table x", True),
    ("create table", True),
    ("SELECT * FROM t WHERE a = 'drop table'", False),
    ("CREATE INDEX i ON t (a)", False),
    ("DROP INDEX i", False),
    ("INSERT INTO t VALUES (1)", False),
    ("createtable x", False),
    ("drop tables", False),
    ("/* unterminated CREATE TABLE", False),
    ("", False),
    # past the head the first words are not looked for: undecided counts as a start
    (" " * (_HEAD - 3) + "create table x", True),
    ("create" + " " * _HEAD + "table x", True),
    ("/*" + " " * _HEAD + "*/ select 1", True),
    ("a" * (_HEAD + 1), True),
    ("select" + " " * _HEAD + "1", False),
])
def test_sql_statements_that_start_or_stop_a_cache(query, starts_or_stops):
    assert sqlhead.starts_or_stops_a_cache(query) is starts_or_stops


@pytest.mark.parametrize(("query", "writes"), [
    ("INSERT INTO t (k, v) VALUES (?, ?)", True),
    ("  -- a note\n merge into t values (?, ?)", True),
    ("/* x */Update t SET v = ? WHERE k = ?", True),
    ("SELECT * FROM t WHERE v = ?", False),
    ("DELETE FROM t WHERE v = ?", False),
    ("SELECT 'insert' FROM t", False),
    ("inserted", False),
    ("", False),
    (" " * (_HEAD - 2) + "insert into t values (?)", True),  # undecided: counts as a write
])
def test_sql_statements_that_write(query, writes):
    assert sqlhead.writes(query) is writes


@pytest.mark.parametrize(("query", "literal"), [
    ("INSERT INTO t VALUES ('k', X'')", True),
    ("insert into t values ('k', x'')", True),
    ("INSERT INTO t VALUES ('k', X'00')", False),
    ("INSERT INTO t VALUES ('it''s', 'x')", False),
    ("INSERT INTO t VALUES ('max''', 'x')", False),
    ("INSERT INTO t VALUES ('k', '')", False),
])
def test_empty_binary_literals(query, literal):
    assert sqlhead.has_empty_binary_literal(query) is literal


@pytest.mark.parametrize(("query", "args"), [
    ("INSERT INTO t (k, v) VALUES (?, ?)", ["k", b""]),
    ("MERGE INTO t (k, v) VALUES (?, ?)", ["k", Typed(TypeCode.BYTE_ARRAY, b"")]),
    ("UPDATE t SET v = ? WHERE k = ?", [b"", "k"]),
    ("INSERT INTO t (k, v) VALUES ('k', X'')", []),
])
def test_an_sql_write_of_an_empty_byte_array_is_refused(query, args):
    with pytest.raises(BadRequest, match="empty byte array in an SQL write"):
        bounds.sql_write(query, args)


@pytest.mark.parametrize(("query", "args"), [
    ("SELECT * FROM t WHERE v = ?", [b""]),  # a read stores nothing
    ("DELETE FROM t WHERE v = ?", [b""]),
    ("INSERT INTO t (k, v) VALUES (?, ?)", ["k", b"x"]),
    ("INSERT INTO t (k, v) VALUES (?, ?)", ["k", None]),
    ("INSERT INTO t (k, v) VALUES ('k', X'01')", []),
])
def test_other_sql_passes_the_empty_bytes_check(query, args):
    bounds.sql_write(query, args)
