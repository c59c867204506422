"""The daemon's log: standard-library logging rendered by structlog in the same format and at
the same level, the level changed at runtime, worker connect and disconnect lines, and the
refused-request and failed-write lines, throttled per class."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from broker import log, refusals
from broker.errors import ClusterUnavailable, Overloaded, error_of
from broker.workers import STREAM_IDENTITY_PREFIX, Peer, Workers
from protocol.ipc import Status, error_payload


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """The log as the daemon writes it, into a buffer; the default set-up again afterwards."""
    stream = io.StringIO()
    yield stream
    log.configure("info", "console")


def _json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_format_renders_ours_and_the_standard_librarys_lines_one_json_per_line(output):
    log.configure("info", "json", stream=output)
    log.get("unit").info("ours", answer=42)
    logging.getLogger("asyncio").warning("socket.send() raised %s", "EPIPE")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("zmq.auth").exception("failed")
    ours, asyncio_line, zmq_line = _json_lines(output)
    assert ours["event"] == "ours" and ours["answer"] == 42 and ours["component"] == "unit"
    assert asyncio_line["event"] == "socket.send() raised EPIPE"
    assert asyncio_line["component"] == "asyncio" and asyncio_line["level"] == "warning"
    assert asyncio_line["timestamp"].endswith("Z")
    assert zmq_line["level"] == "error" and "ValueError: boom" in zmq_line["exception"]


def test_console_format_renders_standard_library_lines_like_ours(output):
    log.configure("info", "console", stream=output)
    log.get("unit").info("ours", answer=42)
    logging.getLogger("asyncio").error("a %d%% thing", 5)
    ours, theirs = output.getvalue().splitlines()
    assert "[info     ] ours" in ours and "component=unit" in ours
    assert "[error    ] a 5% thing" in theirs and "component=asyncio" in theirs


def test_the_level_applies_to_both_and_changes_at_runtime(output):
    log.configure("warning", "json", stream=output)
    log.get("unit").info("hidden")
    logging.getLogger("asyncio").info("hidden too")
    assert output.getvalue() == ""
    log.set_level("debug")
    log.get("unit").debug("shown")
    logging.getLogger("asyncio").debug("shown too")
    assert [line["event"] for line in _json_lines(output)] == ["shown", "shown too"]


def test_configuring_again_replaces_the_handler_instead_of_adding_one(output):
    before = len(logging.getLogger().handlers)
    log.configure("info", "json", stream=output)
    log.configure("info", "json", stream=output)
    assert len(logging.getLogger().handlers) == before
    logging.getLogger("uvloop").warning("once")
    assert len(output.getvalue().splitlines()) == 1


# -- worker connect and disconnect --------------------------------------------------------------


def test_a_stream_worker_is_logged_at_accept_and_at_close_with_its_reason():
    workers = Workers()
    identity = STREAM_IDENTITY_PREFIX + b"\0\0\0\0\0\0\0\1"
    with capture_logs() as lines:
        workers.peer_seen(identity, Peer("unix", 4242, 1000, "gunicorn"))
        worker = workers.seen(identity, 0.0)  # its first request: no second connect line
        workers.set_label(worker, "web")
        workers.disconnected(identity, "closed by the worker")
    connected, disconnected = lines
    assert connected == {"event": "worker_connected", "log_level": "info", "component": "workers",
                         "worker": identity.hex(), "transport": "unix", "pid": 4242,
                         "uid": 1000, "process": "gunicorn", "label": None}
    assert disconnected["event"] == "worker_disconnected"
    assert disconnected["reason"] == "closed by the worker"
    assert (disconnected["pid"], disconnected["uid"], disconnected["label"]) == (4242, 1000, "web")


def test_a_killed_stream_worker_keeps_its_pid_and_label_on_the_disconnect_line():
    workers = Workers()
    identity = STREAM_IDENTITY_PREFIX + b"\0\0\0\0\0\0\0\2"
    workers.peer_seen(identity, Peer("unix", 77, 1000))
    workers.set_label(workers.seen(identity, 0.0), "celery")
    with capture_logs() as lines:
        assert workers.forget(identity) is not None  # admin kill-client: then the close
        workers.disconnected(identity, "killed by admin")
    [line] = lines
    assert (line["event"], line["reason"], line["pid"], line["label"]) == (
        "worker_disconnected", "killed by admin", 77, "celery")


def test_a_zeromq_worker_is_logged_at_its_first_request_and_when_forgotten():
    workers = Workers()
    with capture_logs() as lines:
        workers.peer_seen(b"zmq-1", Peer("ipc", 99, 1000, "python3"))  # no line yet
        workers.seen(b"zmq-1", 0.0)
        workers.seen(b"zmq-1", 1.0)
        workers.expired(now=400.0, liveness=30.0, idle_forget=300.0)
    connected, disconnected = lines
    assert (connected["event"], connected["transport"], connected["pid"]) == (
        "worker_connected", "ipc", 99)
    assert disconnected["event"] == "worker_disconnected"
    assert disconnected["reason"].startswith("silent for 399s: forgotten")
    assert "ZeroMQ does not tell" in disconnected["reason"]


def test_a_killed_zeromq_worker_is_logged_once_saying_it_was_forgotten():
    workers = Workers()
    workers.seen(b"zmq-2", 0.0)
    with capture_logs() as lines:
        workers.forget(b"zmq-2")
    [line] = lines
    assert line["reason"].startswith("killed by admin (forgotten")
    assert line["transport"] is None  # tcp:// or unknown: nobody told who it is


# -- refused requests and failed writes ---------------------------------------------------------


@pytest.fixture
def fresh_throttles() -> Iterator[None]:
    refusals._throttles.clear()
    yield
    refusals._throttles.clear()


def test_each_refused_class_and_failed_write_gets_its_line(fresh_throttles):
    cases = [
        (Status.BAD_REQUEST, error_payload("bad_request", "missing argument 'key'")),
        (Status.TOO_LARGE, error_payload("bad_request", "request of 9 bytes exceeds 8")),
        (Status.OVERLOADED, error_of(Overloaded("this worker has 1024 requests in flight"))),
        (Status.DEADLINE_EXCEEDED, error_payload("deadline_exceeded", "passed")),
        (Status.CLUSTER_UNAVAILABLE, error_of(ClusterUnavailable(
            "connection lost (the request was sent: it may have been applied)",
            maybe_applied=True))),
        (Status.SERVER_ERROR, error_payload("server_error", "Cache does not exist",
                                            server_status=1000)),
        (Status.INTERNAL, error_payload("internal", "logged where it happened")),
    ]
    with capture_logs() as lines:
        for status, payload in cases:
            refusals.answered(b"w", "cache_put", status, payload)
    assert [(line["event"], line["kind"]) for line in lines] == [
        ("request_refused", "bad_request"), ("request_refused", "too_large"),
        ("request_refused", "overloaded"), ("request_refused", "deadline_exceeded"),
        ("write_failed", "cluster_unavailable"), ("request_failed_at_node", "server_error")]
    assert lines[4]["log_level"] == "warning" and "may have been applied" in lines[4]["reason"]
    assert lines[5]["server_status"] == 1000 and lines[5]["op"] == "cache_put"


def test_a_flood_of_one_class_is_throttled_without_silencing_another(fresh_throttles):
    bad = error_payload("bad_request", "not msgpack")
    with capture_logs() as lines:
        for _ in range(50):
            refusals.answered(b"w", "-", Status.BAD_REQUEST, bad)
        refusals.answered(b"w", "-", Status.OVERLOADED, error_payload("overloaded", "busy"))
    kinds = [line["kind"] for line in lines]
    assert kinds.count("bad_request") == 10 and kinds[-1] == "overloaded"


def test_a_long_reason_is_cut(fresh_throttles):
    with capture_logs() as lines:
        refusals.answered(b"w", "sql", Status.SERVER_ERROR,
                          error_payload("server_error", "x" * 5000))
    assert len(lines[0]["reason"]) < 400
