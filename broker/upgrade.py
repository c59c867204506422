"""In-place upgrade without systemd: the running broker re-executes itself with its listening
sockets and its lock, waits until the new process is ready, then drains and exits.

The sockets go over as systemd passes them (fds from 3, ``LISTEN_FDS``, ``LISTEN_FDNAMES``,
``LISTEN_PID`` set by a one-line ``sh`` that then execs the broker, so it is the new pid),
followed by the lock file's fd (``IGNITE_BROKER_LOCK_FD``: the flock belongs to the open
file, which both processes share, so the lock is never free) and one end of a socketpair
(``IGNITE_BROKER_UPGRADE_FD``) on which the new broker says READY=1.  A new broker that
exits, or is not ready within the timeout, is killed and the old one keeps serving.  Since
the listening sockets never close, a worker that connects meanwhile waits in their backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass

from . import log
from .errors import BrokerError
from .sockets import SD_LISTEN_FDS_START, Listeners

_log = log.get("upgrade")

LOCK_FD_VAR = "IGNITE_BROKER_LOCK_FD"
UPGRADE_FD_VAR = "IGNITE_BROKER_UPGRADE_FD"
_TRAMPOLINE = 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"'


class UpgradeError(BrokerError):
    """The upgrade did not happen; the old broker (if any) still serves."""


@dataclass
class Successor:
    pid: int
    channel: socket.socket  # our end of the socketpair; READY=1 arrives on it

    async def ready(self, timeout: float) -> bool:
        """True once the new broker says READY=1; otherwise it is killed and reaped."""
        loop = asyncio.get_running_loop()
        message = b""
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(timeout):
                message = await loop.sock_recv(self.channel, 256)
        self.channel.close()
        if b"READY=1" in message:
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        return False


def spawn(listeners: Listeners, lock_fd: int | None) -> Successor:
    """Start the new broker: this interpreter with this process's arguments."""
    fds, env_vars = listeners.handover_env()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    passed = [*fds, *([lock_fd] if lock_fd is not None else []), theirs.fileno()]
    env = {**os.environ, **env_vars}
    env.pop("WATCHDOG_PID", None)  # the watchdog is the new main process's
    env[UPGRADE_FD_VAR] = str(SD_LISTEN_FDS_START + len(passed) - 1)
    if lock_fd is not None:
        env[LOCK_FD_VAR] = str(SD_LISTEN_FDS_START + len(fds))
    # Copies above every target, so that no dup2 overwrites a source still to be copied.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, SD_LISTEN_FDS_START + len(passed))
            for fd in passed]
    try:
        actions = [(os.POSIX_SPAWN_DUP2, fd, SD_LISTEN_FDS_START + i)
                   for i, fd in enumerate(high)]
        argv = ["sh", "-c", _TRAMPOLINE, "sh", sys.executable, *sys.orig_argv[1:]]
        pid = os.posix_spawn("/bin/sh", argv, env, file_actions=actions, setsigmask=())
    except OSError:
        ours.close()
        raise
    finally:
        for fd in high:
            os.close(fd)
        theirs.close()
    _log.info("successor_started", pid=pid, sockets=env_vars["LISTEN_FDNAMES"])
    return Successor(pid, ours)


# -- in the new broker -------------------------------------------------------------------------

def inherited_lock() -> int | None:
    """The lock file's fd handed over by the broker this one replaces."""
    value = os.environ.pop(LOCK_FD_VAR, None)
    if value is None or not value.isdigit():
        return None
    fd = int(value)
    try:
        os.set_inheritable(fd, False)
    except OSError:
        return None
    return fd


def predecessor() -> socket.socket | None:
    """Where to say READY=1 to the broker this one replaces (None when started afresh)."""
    value = os.environ.pop(UPGRADE_FD_VAR, None)
    if value is None or not value.isdigit():
        return None
    try:
        channel = socket.socket(fileno=int(value))
    except OSError:
        return None
    channel.set_inheritable(False)
    return channel


def tell_ready(channel: socket.socket) -> None:
    with contextlib.suppress(OSError):
        channel.sendall(b"READY=1\n")
    channel.close()


# -- the `ignite-broker upgrade` command ----------------------------------------------------

def read_pid(lock_path: str) -> int | None:
    try:
        with open(lock_path) as fh:
            text = fh.read().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UpgradeError(f"cannot read {lock_path}: {exc.strerror}") from exc
    return int(text) if text.isdigit() else None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def request(lock_path: str, timeout: float) -> tuple[int, int]:
    """Ask the broker whose pid is in ``lock_path`` to upgrade (SIGUSR2); wait until a new
    pid is there and the old process has exited.  (old pid, new pid)."""
    old = read_pid(lock_path)
    if old is None or not alive(old):
        raise UpgradeError(f"no running broker: {lock_path} names no live process")
    try:
        os.kill(old, signal.SIGUSR2)
    except PermissionError:
        raise UpgradeError(f"not allowed to signal the broker (pid {old}): run this as its "
                           "user") from None
    deadline = time.monotonic() + timeout
    new = old
    while time.monotonic() < deadline:
        new = read_pid(lock_path) or old
        if new != old and not alive(old):
            return old, new
        time.sleep(0.1)
    if new == old:
        raise UpgradeError(f"the broker (pid {old}) did not start a successor within "
                           f"{timeout:g}s; it keeps serving (see its log)")
    raise UpgradeError(f"the new broker (pid {new}) serves, but the old one (pid {old}) "
                       f"has not exited within {timeout:g}s")
