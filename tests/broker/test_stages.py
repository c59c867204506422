"""broker/stages.py (the bench's stage stamps) and bench/stages.py's join: off unless the
environment names a file; records land one line per request; the two sides join by id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.stages import STAGES, _broker_records, decompose, stamp_channel
from broker import stages


def test_off_unless_the_environment_names_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from broker import frontend

    monkeypatch.delenv(stages.ENV, raising=False)
    before = frontend.StreamWorker.data_received
    assert stages.install_from_environment() is False
    assert frontend.StreamWorker.data_received is before  # the path is untouched


def test_records_one_line_per_request_and_join_with_the_stub(tmp_path: Path) -> None:
    path = tmp_path / "stages.txt"
    rec = stages._Recorder(str(path))
    for request_id in (7, 8):
        rec.open()
        rec.request_id = request_id
        for stage in ("decoded", "node_write", "node_read", "encoded"):
            rec.stamp(stage)
        rec.close()
    rec.stamp("node_write")  # a heartbeat between requests: no record open, not stamped
    rec.flush()
    records = _broker_records(path)
    assert sorted(records) == [7, 8]
    assert list(records[7]) == ["read", "decoded", "node_write", "node_read", "encoded",
                                "written"]
    first = records[7]
    stub = [(7, first["read"] - 5000, first["read"] - 3000, first["written"] + 4000,
             first["written"] + 6000),
            (99, 0, 1, 2, 3)]  # not seen by the broker: left out
    result = decompose(stub, records)
    assert result["n"] == 1
    by_stage = {row["stage"]: row["p50_us"] for row in result["stages"]}
    assert [name for name, *_ in STAGES] == list(by_stage)
    assert by_stage["stub_encode"] == 2.0 and by_stage["to_broker"] == 3.0
    assert by_stage["to_stub"] == 4.0 and by_stage["stub_return"] == 2.0
    assert result["get_p50_us"] == pytest.approx(sum(by_stage.values()))


def test_the_bench_stage_rung_stamps_a_channel_called_as_the_stub_calls_it() -> None:
    """Was: bench/stages.py's wrapper took (frame, deadline) after the stub's send gained a
    third argument, and the rung (and with it `./dev bench`) failed with a TypeError."""
    calls: list[tuple[Any, ...]] = []

    class Channel:  # the stub's channel methods, as the stub calls them
        def send(self, *args: Any, **named: Any) -> bool:
            calls.append(("send", *args, *named.values()))
            return True

        def wait_reply(self, *args: Any) -> Any:
            calls.append(("wait", *args))
            return "reply"

    marks: dict[str, int] = {}
    sent: list[bytes] = []
    stamp_channel(Channel, marks, sent)
    channel = Channel()
    assert channel.send(b"frame", 1.0, True) is True
    assert channel.wait_reply("exchange") == "reply"
    assert calls == [("send", b"frame", 1.0, True), ("wait", "exchange")]
    assert sent == [b"frame"] and marks["received"] >= marks["send"] > 0
