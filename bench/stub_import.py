"""How heavy ``import libclient`` is, next to ``import pyignite``: import time and resident
memory added, each measured in a fresh interpreter, median of N runs.

    .venv/bin/python bench/stub_import.py [--runs 10] [--json]

Targets (issue "libclient/"): under 30 ms and under 5 MB RSS for ``import libclient``.  The
``first call`` row adds what the first request loads on top (pyzmq, protocol.ipc, msgpack).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_PROBE = r"""
import sys, time
def rss_kb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
before_rss = rss_kb()
started = time.perf_counter()
cpu = time.process_time()
exec(sys.argv[1])
elapsed = time.perf_counter() - started
print(elapsed * 1000, rss_kb() - before_rss, (time.process_time() - cpu) * 1000)
"""

CASES = {
    "import libclient": "import libclient",
    "import pyignite": "import pyignite",
    "libclient, first call": (
        "import libclient, libclient.transport as t, libclient.envelope as e, libclient.wire\n"
        "t.zmq_module(); e.ipc()"),
    "import libclient (AioClient)": "from libclient import AioClient",
}


def _env(pycache: str) -> dict[str, str]:
    """Bytecode caches on, as in any installed deployment, kept out of the source tree."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=pycache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measure(code: str, runs: int, env: dict[str, str]) -> tuple[float, float, float]:
    command = [sys.executable, "-c", _PROBE, code]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, env=env)  # warm caches
    times, rss, cpu = [], [], []
    for _ in range(runs):
        out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True,
                             env=env).stdout.split()
        times.append(float(out[0]))
        rss.append(float(out[1]) / 1024)
        cpu.append(float(out[2]))
    return statistics.median(times), statistics.median(rss), statistics.median(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stub-import-pycache-") as pycache:
        env = _env(pycache)
        results = {name: measure(code, args.runs, env) for name, code in CASES.items()}
    if args.json:
        print(json.dumps({k: {"ms": v[0], "rss_mb": v[1], "cpu_ms": v[2]}
                          for k, v in results.items()}))
    else:
        print(f"{'case':32} {'wall ms':>8} {'CPU ms':>7} {'RSS MB':>7}   "
              f"(medians of {args.runs} fresh interpreters)")
        for name, (ms, mb, cpu) in results.items():
            print(f"{name:32} {ms:8.1f} {cpu:7.1f} {mb:7.2f}")
    ms, mb, _ = results["import libclient"]
    return 0 if ms < 30 and mb < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
