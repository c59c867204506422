"""Data-driven tests over tests/protocol/vectors/*.json (hand-assembled or captured from a node).

Each session is replayed three ways: every response fed whole, one byte at a time, and
pipelined (all requests of a run of ops sent first, then all responses fed as one blob,
so each frame arrives with the next one's bytes trailing it).
"""

from __future__ import annotations

import pytest

from protocol import Response
from protocol.binary import decode_value, encode_value
from tests.protocol.protocol_helpers import feed
from tests.protocol.protocol_vectors import (
    Json,
    build_request,
    connection_for,
    event_to_json,
    iter_sessions,
    iter_values,
    load_vector_files,
    parse_result,
    result_matches,
    same_value,
    typed_to_python,
)

VALUES = list(iter_values())
SESSIONS = list(iter_sessions())


def test_vector_files_are_present() -> None:
    names = [name for name, _ in load_vector_files()]
    assert "handwritten_values.json" in names
    assert "handwritten_sessions.json" in names


@pytest.mark.parametrize("case", [pytest.param(c, id=i) for i, c in VALUES])
def test_value_vector(case: Json) -> None:
    data = bytes.fromhex(case["hex"])
    expected, code = typed_to_python(case["value"])
    assert same_value(decode_value(data), expected)
    if case.get("encode", True):
        assert encode_value(expected, code).hex() == case["hex"]


def _batches(steps: list[Json], pipelined: bool) -> list[list[Json]]:
    batches: list[list[Json]] = []
    for step in steps:
        is_op = step["send"]["kind"] == "op"
        if pipelined and is_op and batches and batches[-1][0]["send"]["kind"] == "op":
            batches[-1].append(step)
        else:
            batches.append([step])
    return batches


def _check_event(event: object, expected: Json, send: Json) -> None:
    expected = dict(expected)
    result = expected.pop("result", None)
    assert event_to_json(event) == expected
    if isinstance(event, Response):
        assert result_matches(send, parse_result(send, event.body), result)


@pytest.mark.parametrize("mode", ["whole", "bytewise", "pipelined"])
@pytest.mark.parametrize("session", [pytest.param(s, id=i) for i, s in SESSIONS])
def test_session_vector(session: Json, mode: str) -> None:
    conn = connection_for(session["config"])
    for batch in _batches(session["steps"], pipelined=mode == "pipelined"):
        for step in batch:
            _, data = build_request(conn, step["send"])
            assert data.hex() == step["request_hex"], step["send"]
        incoming = b"".join(bytes.fromhex(step["response_hex"]) for step in batch)
        if mode == "bytewise":
            events = feed(conn, [incoming[i : i + 1] for i in range(len(incoming))])
        else:
            events = feed(conn, [incoming])
        expected = [(step["send"], e) for step in batch for e in step["events"]]
        assert len(events) == len(expected)
        for event, (send, exp) in zip(events, expected, strict=True):
            _check_event(event, exp, send)
