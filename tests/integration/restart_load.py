"""Workers under load across a broker restart (issue 11): each worker process puts unique keys
and reads each back, counting every outcome, until a stop file appears; then it writes its
counts and the keys whose puts were acknowledged as JSON.

    python -m tests.integration.restart_load ENDPOINT sync|aio CACHE TAG STOP_FILE OUT_FILE

It creates OUT_FILE.running once a put of its was acknowledged, and counts the puts
acknowledged once a file ``restarted`` exists next to STOP_FILE (load after the restart).
Used by test_graceful_restart.py and by the measurement in docs/reliability.md ("Restarts").
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from libclient import AioClient, Client

THREADS = 4  # sync: threads per process, each with its own connection
TASKS = 8  # aio: tasks sharing the process's one connection
TIMEOUT = 30.0  # each request's deadline (the restart must fit in it)
CONNECT_TIMEOUT = 20.0  # no socket file for this long (the old broker gone, the new not yet
#                         bound) still counts as a restart


class Tally:
    """What one worker saw: acknowledged puts, right reads, and every failure's text."""

    def __init__(self, out_file: str, restarted_file: str) -> None:
        self.lock = threading.Lock()
        self._running_file: str | None = out_file + ".running"
        self._restarted_file = restarted_file
        self.acked_after_restart = 0
        self.acked: list[str] = []
        self.reads_ok = 0
        self.wrong: list[str] = []
        self.failed: list[str] = []
        self.maybe_applied: list[str] = []
        self.worst = 0.0  # the longest request (seconds): a figure, never judged

    def took(self, started: float) -> None:
        self.worst = max(self.worst, time.monotonic() - started)

    def ack(self, key: str) -> None:
        """A put acknowledged (call with the lock held, or on the event loop)."""
        self.acked.append(key)
        if self._running_file is not None:
            open(self._running_file, "w").close()
            self._running_file = None
        if os.path.exists(self._restarted_file):
            self.acked_after_restart += 1

    def failure(self, what: str, exc: Exception) -> None:
        with self.lock:
            text = f"{what}: {type(exc).__name__}: {exc}"
            self.failed.append(text)
            if getattr(exc, "maybe_applied", None) or "may have been applied" in str(exc):
                self.maybe_applied.append(text)

    def as_json(self) -> dict[str, Any]:
        return {"acked": self.acked, "reads_ok": self.reads_ok, "wrong": self.wrong,
                "failed": self.failed, "maybe_applied": self.maybe_applied,
                "worst_seconds": self.worst, "acked_after_restart": self.acked_after_restart}


def _sync(endpoint: str, cache_name: str, tag: str, stopped: Callable[[], bool],
          tally: Tally) -> None:
    client = Client(broker=endpoint, timeout=TIMEOUT, connect_timeout=CONNECT_TIMEOUT)
    client.connect()
    cache = client.get_cache(cache_name)

    def loop(n: int) -> None:
        i = 0
        while not stopped():
            i += 1
            key = f"{tag}-{n}-{i}"
            started = time.monotonic()
            try:
                cache.put(key, i)
            except Exception as exc:
                tally.failure(f"put {key}", exc)
                continue
            with tally.lock:
                tally.took(started)
                tally.ack(key)
            started = time.monotonic()
            try:
                got = cache.get(key)
            except Exception as exc:
                tally.failure(f"get {key}", exc)
                continue
            with tally.lock:
                tally.took(started)
                if got == i:
                    tally.reads_ok += 1
                else:
                    tally.wrong.append(f"{key}: {got!r}")

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()


async def _aio(endpoint: str, cache_name: str, tag: str, stopped: Callable[[], bool],
               tally: Tally) -> None:
    client = AioClient(broker=endpoint, connect_timeout=CONNECT_TIMEOUT)
    async with client.connect():
        cache = await client.get_cache(cache_name)

        async def loop(n: int) -> None:
            i = 0
            while not stopped():
                i += 1
                key = f"{tag}-{n}-{i}"
                started = time.monotonic()
                try:
                    await cache.put(key, i, timeout=TIMEOUT)
                except Exception as exc:
                    tally.failure(f"put {key}", exc)
                    continue
                tally.took(started)
                tally.ack(key)
                started = time.monotonic()
                try:
                    got = await cache.get(key, timeout=TIMEOUT)
                except Exception as exc:
                    tally.failure(f"get {key}", exc)
                    continue
                tally.took(started)
                if got == i:
                    tally.reads_ok += 1
                else:
                    tally.wrong.append(f"{key}: {got!r}")

        await asyncio.gather(*(loop(n) for n in range(TASKS)))


def main(argv: list[str]) -> int:
    endpoint, flavour, cache_name, tag, stop_file, out_file = argv
    tally = Tally(out_file, os.path.join(os.path.dirname(stop_file), "restarted"))

    def stopped() -> bool:
        return os.path.exists(stop_file)

    if flavour == "sync":
        _sync(endpoint, cache_name, tag, stopped, tally)
    else:
        asyncio.run(_aio(endpoint, cache_name, tag, stopped, tally))
    with open(out_file + ".tmp", "w") as out:
        json.dump(tally.as_json(), out)
    os.rename(out_file + ".tmp", out_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
