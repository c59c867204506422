"""What the broker tells its service manager (the sd_notify protocol): READY, STATUS, WATCHDOG,
RELOADING, STOPPING, MAINPID; a no-op when no ``$NOTIFY_SOCKET`` is set.

The watchdog is fed from the event loop itself, so a loop that is stuck (a blocking call, a
busy loop) stops the pings and systemd restarts the broker after ``WatchdogSec=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable

from . import log

_log = log.get("notify")

#: How often STATUS= is refreshed with live figures.
STATUS_INTERVAL = 5.0


def sd_notify(message: str) -> None:
    """Send ``message`` (newline-separated ``KEY=value`` lines) to ``$NOTIFY_SOCKET``."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock, \
            contextlib.suppress(OSError):
        sock.sendto(message.encode(), address)


def watchdog_interval() -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds when the watchdog is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None


def reloading() -> None:
    """A reload begins (systemd 253+ wants the monotonic time with it)."""
    sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")


def ready(status: str) -> None:
    sd_notify(f"READY=1\nSTATUS={status}")


def stopping() -> None:
    sd_notify("STOPPING=1")


def detach() -> None:
    """This process hands its service over to another one (an in-place upgrade): it tells
    the service manager nothing more, so its stop is not taken for the service's."""
    os.environ.pop("NOTIFY_SOCKET", None)
    os.environ.pop("WATCHDOG_USEC", None)


class Heartbeat:
    """STATUS= with live figures every ``STATUS_INTERVAL`` s and WATCHDOG=1 at half the
    watchdog interval, both sent by one task on the event loop (until the loop ends: the
    watchdog is fed through the drain too)."""

    def __init__(self, status: Callable[[], str]) -> None:
        self._status = status
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if os.environ.get("NOTIFY_SOCKET"):
            self._task = asyncio.get_running_loop().create_task(self._run(), name="notify")

    async def _run(self) -> None:
        watchdog = watchdog_interval()
        tick = min(watchdog, STATUS_INTERVAL) if watchdog else STATUS_INTERVAL
        next_status = 0.0
        while True:
            now = time.monotonic()
            lines = ["WATCHDOG=1"] if watchdog else []
            if now >= next_status:
                lines.append(f"STATUS={self._status()}")
                next_status = now + STATUS_INTERVAL
            if lines:
                sd_notify("\n".join(lines))
            await asyncio.sleep(tick)
