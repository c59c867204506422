"""The real broker daemon started as a service manager would: a config in a temp dir, an
optional NOTIFY_SOCKET the test reads, and listening sockets passed as systemd passes them
(fds from 3, LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID = the broker's own pid)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from broker.devcluster.brokerproc import render_toml
from broker.upgrade import alive, read_pid

# A shell that learns its pid, then becomes the broker (exec keeps pid and fds).
_TRAMPOLINE = 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"'
WAIT = 90.0  # an upper bound for anything to happen on a loaded machine, never a speed claim


class Daemon:
    """``python -m broker run`` in a private directory; ``stream`` and ``ipc`` endpoints."""

    def __init__(self, workdir: Path, nodes: list[tuple[str, int]], *,
                 tcp: str | None = None, **settings: Any) -> None:
        self.workdir = workdir
        run = workdir / "run"
        run.mkdir(mode=0o700, exist_ok=True)
        self.stream_path, self.ipc_path = str(run / "broker.stream"), str(run / "broker.sock")
        self.endpoints = {"ipc": f"ipc://{self.ipc_path}", "unix": f"unix://{self.stream_path}"}
        if tcp:
            self.endpoints["tcp"] = tcp
        self.lock_path = self.ipc_path + ".lock"  # the broker's default: <first socket>.lock
        self.config_path = workdir / "broker.toml"
        self.log_path = workdir / "broker.log"
        self.config_path.write_text(render_toml({
            "broker.endpoints": list(self.endpoints.values()),
            "cluster.nodes": [f"{h}:{p}" for h, p in nodes],
            **{k.replace("__", "."): v for k, v in settings.items()},
        }))
        self.pid: int | None = None

    def start(self, env: dict[str, str] | None = None,
              sockets: list[tuple[str, socket.socket]] | None = None) -> int:
        """Spawn the broker; ``sockets`` [(name, listening socket)] become fds 3, 4, ..."""
        child_env = {k: v for k, v in os.environ.items()
                     if not k.startswith(("LISTEN_", "NOTIFY_SOCKET", "WATCHDOG_"))}
        child_env.update(env or {})
        actions: list[tuple[Any, ...]] = []
        high: list[int] = []
        if sockets:
            child_env["LISTEN_FDS"] = str(len(sockets))
            child_env["LISTEN_FDNAMES"] = ":".join(name for name, _ in sockets)
            high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD_CLOEXEC, 3 + len(sockets))
                    for _, s in sockets]
            actions = [(os.POSIX_SPAWN_DUP2, fd, 3 + i) for i, fd in enumerate(high)]
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        actions = [(os.POSIX_SPAWN_DUP2, log_fd, 1), (os.POSIX_SPAWN_DUP2, log_fd, 2), *actions]
        argv = ["sh", "-c", _TRAMPOLINE, "sh", sys.executable, "-m", "broker", "run",
                "--config", str(self.config_path)]
        try:
            self.pid = os.posix_spawn("/bin/sh", argv, child_env, file_actions=actions,
                                      setsid=True)
        finally:
            for fd in [*high, log_fd]:
                os.close(fd)
        return self.pid

    def serving_pid(self) -> int | None:
        """The pid in the lock file (the broker that serves now, after upgrades too)."""
        return read_pid(self.lock_path)

    def reap(self) -> None:
        """Collect our child if it has exited (the ones an upgrade started are not ours)."""
        if self.pid is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, os.WNOHANG)

    def wait_exit(self, pid: int, timeout: float = WAIT) -> int | None:
        """Wait for ``pid`` to exit; its exit code when it is our child."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pid == self.pid:
                with contextlib.suppress(ChildProcessError):
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        self.pid = None
                        return os.waitstatus_to_exitcode(status)
            elif not alive(pid):
                return None
            time.sleep(0.05)
        raise AssertionError(f"broker pid {pid} did not exit within {timeout}s:\n{self.log()}")

    def stop(self, pid: int | None = None) -> int | None:
        """SIGTERM ``pid`` (default: our child) and wait for it to exit."""
        pid = pid or self.pid
        if pid is None or not alive(pid):
            self.reap()
            return None
        os.kill(pid, signal.SIGTERM)
        return self.wait_exit(pid)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except FileNotFoundError:
            return ""


def listening_socket(path: str, mode: int = 0o660) -> socket.socket:
    """A listening Unix stream socket at ``path``, as a systemd socket unit makes it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, mode)
    sock.listen(128)
    return sock


def wait_until(predicate: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
