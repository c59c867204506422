"""Refusals the broker sends with request id 0 (it could not read the id) say enough for the
stub to find the request: TOO_LARGE names the limit, and every such refusal the refused
frame's size (libclient/core.py ``refuses``)."""

from __future__ import annotations

from typing import Any

import msgpack

from protocol import ipc
from tests.broker.test_goaway_frontend import HeldDispatch, _frontend


def _replies(tmp_path: Any, *frames: bytes, over_budget: int | None = None
             ) -> list[tuple[int, int, Any]]:
    frontend = _frontend(tmp_path, HeldDispatch())
    got: list[tuple[int, int, Any]] = []

    def reply(request_id: int, status: int, payload: Any) -> None:
        got.append((request_id, status, payload))

    try:
        for frame in frames:
            frontend.serve(b"worker", frame, reply)
        if over_budget is not None:
            frontend.refuse_over_budget(b"worker", reply, over_budget)
    finally:
        frontend.close()
    return got


def test_too_large_names_the_limit_and_the_size(tmp_path):
    big = ipc.pack_request(5, "cache_put", {"cache": "c", "key": 1, "value": b"x" * (1 << 20)})
    [(request_id, status, payload)] = _replies(tmp_path, big)
    assert (request_id, status) == (0, ipc.Status.TOO_LARGE)
    assert payload[ipc.TOO_LARGE_LIMIT] == 1 << 20  # the frontend's max_request_bytes
    assert payload[ipc.REFUSED_SIZE] == len(big)
    assert payload["kind"] == "bad_request"


def test_an_unreadable_envelope_and_a_budget_refusal_name_the_frame_size(tmp_path):
    (rid1, status1, bad), (rid2, status2, budget) = _replies(tmp_path, b"\xc1\x00",
                                                             over_budget=4321)
    assert (rid1, status1, bad[ipc.REFUSED_SIZE]) == (0, ipc.Status.BAD_REQUEST, 2)
    assert (rid2, status2, budget[ipc.REFUSED_SIZE]) == (0, ipc.Status.OVERLOADED, 4321)
    assert budget["maybe_applied"] is False


def test_a_refusal_that_names_its_request_carries_no_size(tmp_path):
    unsupported = msgpack.packb([2, 9, "ping", 0, {}])  # envelope version 2, id 9
    [(request_id, status, payload)] = _replies(tmp_path, unsupported)
    assert (request_id, status) == (9, ipc.Status.UNSUPPORTED_VERSION)
    assert ipc.REFUSED_SIZE not in payload
