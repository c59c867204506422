"""Fixtures for libclient unit tests: a fake broker (in this process or in a subprocess that a
test can kill) on a private ipc socket, and a connected client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from libclient import Client
from tests.libclient.fakebroker import FakeBroker

FAKE = Path(__file__).with_name("fakebroker.py")


@pytest.fixture(params=["ipc", "unix"])
def endpoint(request, tmp_path):
    """The fake broker's endpoint: every test runs over ZeroMQ and over the Unix stream."""
    name = "broker.sock" if request.param == "ipc" else "broker.stream"
    return f"{request.param}://{tmp_path}/{name}"


@pytest.fixture
def fake(endpoint):
    broker = FakeBroker(endpoint)
    yield broker
    broker.stop()


@pytest.fixture
def client(fake):
    c = Client(broker=fake.endpoint, timeout=5)
    c.connect()
    yield c
    c.close()


class FakeProcess:
    """A fake broker in its own process: ``kill()`` is a crash, ``start()`` a restart."""

    def __init__(self, endpoint: str, silent_ops: str = "") -> None:
        self.endpoint = endpoint
        self.silent_ops = silent_ops
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FakeProcess:
        env = dict(os.environ, FAKE_SILENT_OPS=self.silent_ops)
        self.proc = subprocess.Popen([sys.executable, str(FAKE), self.endpoint],
                                     stdout=subprocess.PIPE, env=env)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == b"ready\n"
        return self

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@pytest.fixture
def fake_process(endpoint):
    procs: list[FakeProcess] = []

    def make(silent_ops: str = "") -> FakeProcess:
        proc = FakeProcess(endpoint, silent_ops)
        procs.append(proc)
        return proc

    yield make
    for proc in procs:
        proc.kill()
