"""The per-process heartbeat: a daemon thread that pings idle channels holding cursors or
transactions, so the broker keeps them; it exists only while such channels do.

Why a thread: the broker spots dead and hung workers by the absence of traffic on their
socket, and a synchronous stub sends nothing between calls.  A worker that holds no cursor or
transaction needs no liveness at all, so idle workers cost nothing.  The thread only pings a
channel whose lock is free (its owner is not mid-request) and that was silent for an interval;
it is started lazily, ends when nothing is watched, and a forked child starts its own.
"""

from __future__ import annotations

import os
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_instance: Heartbeat | None = None


class Heartbeat:
    def __init__(self) -> None:
        self._watched: dict[Any, float] = {}
        self._lock = threading.RLock()  # finalizers may unwatch from inside it (GC)
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<Heartbeat watching={len(self._watched)} running={self._thread is not None}>"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def watch(self, channel: Any, interval: float) -> None:
        with self._lock:
            self._watched[channel] = interval
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="libclient-heartbeat",
                                                daemon=True)
                self._thread.start()

    def unwatch(self, channel: Any) -> None:
        with self._lock:
            self._watched.pop(channel, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._watched:
                    self._thread = None
                    return
                watched = list(self._watched.items())
            for channel, interval in watched:
                if channel.closed or channel.pid != os.getpid():
                    self.unwatch(channel)
                else:
                    channel.ping_if_idle(interval)
            time.sleep(min(interval for _, interval in watched) / 4)  # nothing wakes it early


def heartbeat() -> Heartbeat:
    """This process's heartbeat (a child gets a fresh one: threads do not survive fork)."""
    global _instance
    if _instance is None:
        _instance = Heartbeat()
    return _instance


def _reset_after_fork() -> None:
    global _instance
    _instance = None


os.register_at_fork(after_in_child=_reset_after_fork)
