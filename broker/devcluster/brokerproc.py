"""Runs the real broker as a subprocess for tests and the demo: config in a temp dir, readiness
checked with a real ``hello`` through libclient, the broker's log shown on failure."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from libclient.exceptions import BrokerTimeout, BrokerUnavailable
from libclient.transport import Transport

_READY_TIMEOUT = 60.0


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def render_toml(settings: dict[str, Any]) -> str:
    """``{"section.key": value}`` as a TOML document."""
    sections: dict[str, list[str]] = {}
    for name, value in settings.items():
        section, key = name.split(".", 1)
        sections.setdefault(section, []).append(f"{key} = {_toml_value(value)}")
    return "".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items())


class BrokerProcess:
    """``ignite-broker run`` in a subprocess, bound to a private ipc socket (``endpoint``) and a
    private Unix stream socket (``stream_endpoint``)."""

    def __init__(
        self,
        nodes: list[tuple[str, int]],
        *,
        workdir: str | Path | None = None,
        settings: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.env = env  # extra environment variables of the broker process
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="ignite-broker-test-"))
        self.endpoint = f"ipc://{self.workdir}/run/broker.sock"
        self.stream_endpoint = f"unix://{self.workdir}/run/broker.stream"
        self.admin_endpoint = f"ipc://{self.workdir}/run/admin.sock"
        self.config_path = self.workdir / "broker.toml"
        self.log_path = self.workdir / "broker.log"
        self.settings = {
            "broker.endpoints": [self.endpoint, self.stream_endpoint],
            "cluster.nodes": [f"{h}:{p}" for h, p in nodes],
            **(settings or {}),
        }
        self.config_path.write_text(render_toml(self.settings))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_nodes: int = 1) -> BrokerProcess:
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker", "run", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **self.env} if self.env else None,
        )
        log.close()
        self.wait_ready(wait_nodes)
        return self

    def wait_ready(self, wait_nodes: int = 1, timeout: float = _READY_TIMEOUT) -> dict[str, Any]:
        """Until the broker answers hello with at least ``wait_nodes`` node connections ready."""
        deadline = time.monotonic() + timeout
        transport = Transport(self.endpoint, timeout=1.0, retries=0)
        try:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"broker exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    info: dict[str, Any] = transport.call("hello", {})
                except (BrokerUnavailable, BrokerTimeout):  # not up yet; or too slow to
                    continue  # answer within 1 s on a loaded machine (its DEADLINE_EXCEEDED)
                if info["nodes_ready"] >= wait_nodes:
                    return info
                time.sleep(0.05)
        finally:
            transport.close()
        raise RuntimeError(f"broker not ready within {timeout}s:\n{self.log()}")

    def admin(self, command: str) -> object:
        """The result of an admin command (``show stats``...) on the running broker."""
        from broker.admin import query

        answer = query(self.admin_endpoint, command)
        if not answer.get("ok"):
            raise RuntimeError(answer.get("error"))
        return answer["result"]

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL after ``timeout``; returns the exit code."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        os.kill(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def __enter__(self) -> BrokerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_broker(
    nodes: list[tuple[str, int]],
    workdir: str | Path,
    settings: dict[str, Any] | None = None,
    wait_nodes: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[BrokerProcess]:
    """A started broker for a test module; stopped with SIGTERM afterwards, which must exit
    cleanly (the log is printed for the test report)."""
    proc = BrokerProcess(nodes, workdir=workdir, settings=settings, env=env)
    proc.start(wait_nodes)
    try:
        yield proc
    finally:
        code = proc.stop()
        print(proc.log())
        if code != 0:
            raise AssertionError(f"the broker exited with {code} on SIGTERM")
