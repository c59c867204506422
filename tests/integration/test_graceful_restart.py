"""Issue 11: a graceful restart under load loses nothing and leaves no doubt.  Worker processes
(sync threads, or asyncio tasks) put unique keys and read each back through a real broker
subprocess and a real node; the broker gets SIGTERM and a new one starts on the same endpoints.
Every request must succeed (re-sent by the stub when the broker said it did not process it),
none may end as "may have been applied", and every acknowledged put must be in the cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from broker.devcluster.brokerproc import BrokerProcess
from libclient import Client

pytestmark = pytest.mark.integration

_ROOT = Path(__file__).resolve().parents[2]


def _endpoint(proc: BrokerProcess, transport: str) -> str:
    return proc.stream_endpoint if transport == "unix" else proc.endpoint


def _stop_timed(proc: BrokerProcess) -> dict[str, float]:
    """SIGTERM, and how long until the log says ``stopped`` and until the process is gone
    (figures for docs/reliability.md, not judged here)."""
    assert proc.proc is not None
    started = time.monotonic()
    os.kill(proc.proc.pid, signal.SIGTERM)
    stopped_at = None
    while proc.proc.poll() is None and time.monotonic() - started < 60:
        if stopped_at is None and "] stopped " in proc.log():
            stopped_at = time.monotonic()
        time.sleep(0.005)
    code = proc.stop()  # SIGKILL if it is still there after 60 s
    gone = time.monotonic()
    assert code == 0, proc.log()
    stopped_at = stopped_at or gone
    return {"stop_seconds": round(stopped_at - started, 3),
            "exit_after_stopped": round(gone - stopped_at, 3)}


def _wait_for(condition: Any, workers: list[subprocess.Popen[bytes]]) -> None:
    """Until ``condition()`` (every worker under way), however loaded the machine."""
    while not condition():
        assert all(w.poll() is None for w in workers), "a worker exited before its first put"
        time.sleep(0.05)


def restart_under_load(nodes: list[tuple[str, int]], workdir: Path, transport: str,
                       flavour: str, *, workers: int = 2, before: float = 1.5,
                       after: float = 1.5) -> dict[str, Any]:
    """The scenario; returns what the workers saw and the broker's stop time."""
    proc = BrokerProcess(nodes, workdir=workdir)
    proc.start()
    endpoint = _endpoint(proc, transport)
    cache_name = f"restart-{uuid.uuid4().hex[:8]}"
    setup = Client(broker=endpoint)
    with setup.connect():
        setup.get_or_create_cache(cache_name)
    stop_file = workdir / "stop"
    outs = [workdir / f"worker-{n}.json" for n in range(workers)]
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "tests.integration.restart_load", endpoint, flavour,
         cache_name, f"w{n}", str(stop_file), str(out)], cwd=_ROOT, env=env)
        for n, out in enumerate(outs)]
    try:
        _wait_for(lambda: all(Path(f"{out}.running").exists() for out in outs), procs)
        time.sleep(before)  # load, not a bound: nothing here is judged by time
        started = time.monotonic()
        figures = _stop_timed(proc)
        proc.start()
        figures["restart_seconds"] = round(time.monotonic() - started, 3)
        (workdir / "restarted").touch()
        time.sleep(after)
    finally:
        stop_file.touch()
        for worker in procs:
            worker.wait(120)
    try:
        results = [json.loads(out.read_text()) for out in outs]
        acked = [key for r in results for key in r["acked"]]
        check = Client(broker=endpoint)
        with check.connect():
            cache = check.get_cache(cache_name)
            found: dict[str, Any] = {}
            for start in range(0, len(acked), 1000):
                found.update(cache.get_all(acked[start:start + 1000]))
            cache.destroy()
    finally:
        proc.stop()
        print(proc.log())
    return {
        **figures,
        "acked": len(acked),
        "reads_ok": sum(r["reads_ok"] for r in results),
        "missing": [key for key in acked if key not in found],
        "wrong": [w for r in results for w in r["wrong"]],
        "failed": [f for r in results for f in r["failed"]],
        "maybe_applied": [f for r in results for f in r["maybe_applied"]],
        "worst_request_seconds": round(max(r["worst_seconds"] for r in results), 3),
        "acked_after_restart": [r["acked_after_restart"] for r in results],
        "exit_codes": [worker.returncode for worker in procs],
    }


@pytest.mark.parametrize("flavour", ["sync", "aio"])
@pytest.mark.parametrize("transport", ["unix", "ipc"])
def test_restart_under_load_loses_nothing(ignite_node, tmp_path, transport, flavour):
    seen = restart_under_load(ignite_node.addresses, tmp_path, transport, flavour)
    print(json.dumps({k: v if not isinstance(v, list) else v[:10]
                      for k, v in seen.items()}, indent=1))
    assert seen["exit_codes"] == [0, 0]
    assert seen["failed"] == []
    assert seen["maybe_applied"] == []
    assert seen["wrong"] == []
    assert seen["missing"] == []
    assert seen["reads_ok"] == seen["acked"]
    assert all(seen["acked_after_restart"])  # every worker went on with the new broker


if __name__ == "__main__":  # the measurement in docs/reliability.md ("Restarts")
    import tempfile

    port = int(sys.argv[1])
    for kind in sys.argv[2:] or ["unix:sync", "unix:aio", "ipc:sync", "ipc:aio"]:
        how, flavour = kind.split(":")
        got = restart_under_load([("127.0.0.1", port)], Path(tempfile.mkdtemp()), how, flavour)
        print(kind, json.dumps({k: (len(v) if isinstance(v, list) and k not in (
                                        "exit_codes", "acked_after_restart")
                                    else v) for k, v in got.items()}), flush=True)
        for failure in got["failed"][:3]:
            print("  e.g.", failure, flush=True)
