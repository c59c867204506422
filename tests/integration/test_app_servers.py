"""Real app servers sharing one real broker on a real Ignite node, over unix:// and ZeroMQ
ipc://: gunicorn --preload with sync and with gthread workers (a Client made before the fork),
uvicorn --workers 4 with Starlette and AioClient, and a celery prefork worker (Redis as its
queue).  Each writes and reads back a few hundred unique keys through real HTTP requests or
real task submissions: every answer is checked, none may fail, every worker process serves
some, and the values are read back directly through the broker."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from broker.devcluster.brokerproc import running_broker
from libclient import Client

pytestmark = pytest.mark.integration

APPS = Path(__file__).parent / "apps"
WORKERS = 4
KEYS = 300
CLIENT_THREADS = 8
# After the first round, reads of the same keys go on (at most this many) until every worker
# process has answered: the kernel and celery spread the load, they do not promise it.
MAX_EXTRA_READS = 4000
STARTUP_TIMEOUT = 120.0  # a bound on start-up, not a speed claim
ANSWER_TIMEOUT = 120.0


# -------------------------------------------------------------------------- the shared parts


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory):
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("apps")) as proc:
        yield proc


@pytest.fixture(params=["unix", "ipc"])
def endpoint(request, broker) -> str:
    """The broker endpoint the app's workers use: the Unix stream socket or ZeroMQ ipc://."""
    return broker.stream_endpoint if request.param == "unix" else broker.endpoint


@pytest.fixture
def cache_name() -> str:
    return f"apps-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_pids(parent: int, marker: bytes = b"") -> set[int]:
    """Live processes whose parent is ``parent`` (and whose command line holds ``marker``)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and fields[0] != "Z" and marker in cmdline:
            found.add(int(entry.name))
    return found


class Server:
    """A server command in a session of its own; its output goes to a log shown on failure."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path,
                 worker_marker: bytes = b"") -> None:
        self.argv = argv
        self.env = {**os.environ, "PYTHONPATH": str(APPS), **env}
        self.log_path = log_path
        self.worker_marker = worker_marker
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Server:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=APPS, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                print(f"{self.argv[2]} did not stop on SIGTERM; killing its process group")
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        print(self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def workers(self) -> set[int]:
        return child_pids(self.pid, self.worker_marker)

    def wait_ready(self, ready: Callable[[], bool]) -> set[int]:
        """Until all WORKERS worker processes run and ``ready()``; returns their pids."""
        assert self.proc is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.argv} exited with {self.proc.returncode}:\n"
                                     f"{self.log()}")
            workers = self.workers()
            if len(workers) == WORKERS and ready():
                return workers
            time.sleep(0.2)
        raise AssertionError(f"{self.argv} not ready within {STARTUP_TIMEOUT}s "
                             f"(workers {self.workers()}):\n{self.log()}")


# ------------------------------------------------------------- driving an app and checking it


@dataclass(frozen=True)
class Answer:
    pid: int
    value: Any = None


class App(Protocol):
    """A running app: writes and reads keys, each answer naming the worker pid that gave it
    (an exception in place of an answer is an error)."""

    def put_all(self, items: list[tuple[str, str]]) -> list[Answer | Exception]: ...

    def get_all(self, keys: list[str]) -> list[Answer | Exception]: ...


@dataclass
class Tally:
    served: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    wrong: list[tuple[str, str, Any]] = field(default_factory=list)

    def count(self, answers: list[Answer | Exception]) -> list[Answer]:
        good = []
        for answer in answers:
            if isinstance(answer, Exception):
                self.errors.append(repr(answer)[:300])
            else:
                self.served[answer.pid] += 1
                good.append(answer)
        return good

    def check_reads(self, keys: list[str], answers: list[Answer | Exception],
                    values: dict[str, str]) -> None:
        for key, answer in zip(keys, answers, strict=True):
            if not isinstance(answer, Exception) and answer.value != values[key]:
                self.wrong.append((key, values[key], answer.value))
        self.count(answers)


def exercise(app: App, workers: set[int], endpoint: str, cache_name: str) -> Tally:
    """KEYS unique keys written and read back through the app, reads going on until every
    worker has answered; then the same values read directly through the broker."""
    run = uuid.uuid4().hex[:12]
    values = {f"{run}-{i}": f"value {i} {uuid.uuid4()} \u00e9\u2713" for i in range(KEYS)}
    keys = list(values)
    tally = Tally()
    tally.count(app.put_all(list(values.items())))
    tally.check_reads(keys, app.get_all(keys), values)
    extra = 0
    while not workers <= tally.served.keys() and extra < MAX_EXTRA_READS:
        batch = keys[extra % KEYS:][:50]
        tally.check_reads(batch, app.get_all(batch), values)
        extra += len(batch)
    print(f"served per worker pid: {dict(tally.served)} ({extra} extra reads)")

    assert tally.errors == []
    assert tally.wrong == []
    assert set(tally.served) == workers, "every worker process serves, and only they do"
    with Client(broker=endpoint) as direct:
        direct.connect()
        assert direct.get_cache(cache_name).get_all(keys) == values
    return tally


def preloaded_by(endpoint: str, cache_name: str) -> int:
    """The pid that used the app's client at import (the key the apps write then)."""
    with Client(broker=endpoint) as direct:
        direct.connect()
        return direct.get_cache(cache_name).get("preloaded-by")


# --------------------------------------------------------------------------- HTTP app servers


class HttpApp:
    """PUT/GET /kv/<key> over real HTTP, a new connection per request (so that the kernel
    spreads them over the worker processes), CLIENT_THREADS at a time."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(self, method: str, path: str, body: bytes | None = None) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=ANSWER_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers={"Connection": "close"})
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {response.status} {data[:300]!r}")
        return json.loads(data)

    def is_up(self) -> bool:
        try:
            self.request("GET", "/kv/ready")
        except OSError:
            return False
        return True

    def _each(self, fn: Callable[[Any], Answer], items: list) -> list[Answer | Exception]:
        def attempt(item: Any) -> Answer | Exception:
            try:
                return fn(item)
            except Exception as exc:
                return exc

        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            return list(pool.map(attempt, items))

    def put_all(self, items: list[tuple[str, str]]) -> list[Answer | Exception]:
        def put(item: tuple[str, str]) -> Answer:
            return Answer(self.request("PUT", f"/kv/{item[0]}", item[1].encode())["pid"])

        return self._each(put, items)

    def get_all(self, keys: list[str]) -> list[Answer | Exception]:
        def get(key: str) -> Answer:
            answer = self.request("GET", f"/kv/{key}")
            return Answer(answer["pid"], answer["value"])

        return self._each(get, keys)


GUNICORN_KINDS = {
    "sync": ["-k", "sync"],
    "gthread": ["-k", "gthread", "--threads", "4"],
}


@pytest.mark.parametrize("kind", sorted(GUNICORN_KINDS))
def test_gunicorn_preload(kind, endpoint, cache_name, tmp_path):
    """gunicorn --preload -w 4: one Client made and used in the master, shared by fork."""
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "--preload", "-w", str(WORKERS),
            *GUNICORN_KINDS[kind], "-b", f"127.0.0.1:{port}", "--timeout", "120",
            "--log-level", "warning", "wsgi_app:application"]
    env = {"IGNITE_BROKER": endpoint, "APP_CACHE": cache_name}
    with Server(argv, env, tmp_path / "gunicorn.log") as server:
        app = HttpApp(port)
        workers = server.wait_ready(app.is_up)
        exercise(app, workers, endpoint, cache_name)
        assert preloaded_by(endpoint, cache_name) == server.pid


def test_uvicorn_workers(endpoint, cache_name, tmp_path):
    """uvicorn --workers 4 with Starlette: an AioClient per worker process."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--workers", str(WORKERS), "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "asgi_app:app"]
    env = {"IGNITE_BROKER": endpoint, "APP_CACHE": cache_name}
    # uvicorn spawns its workers (multiprocessing "spawn"); its resource tracker is no worker
    with Server(argv, env, tmp_path / "uvicorn.log", worker_marker=b"spawn_main") as server:
        app = HttpApp(port)
        workers = server.wait_ready(app.is_up)
        exercise(app, workers, endpoint, cache_name)


# ---------------------------------------------------------------------------- celery prefork


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A redis-server of our own on a free port, its files in a temp dir."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed: the celery test needs Debian's package "
                    "redis-server (./dev test installs it with apt-get as root or with "
                    "passwordless sudo; otherwise: apt-get install redis-server)")
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    log_path = workdir / "redis.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_redis(proc, port, log_path)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(30)


def wait_for_redis(proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"redis-server exited with {proc.returncode}:\n"
                                 f"{log_path.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"redis-server not up within {STARTUP_TIMEOUT}s")


class CeleryApp:
    """Tasks kv.put/kv.get submitted through Redis; a batch is sent whole, then collected."""

    def __init__(self, redis_url: str) -> None:
        from celery import Celery

        self.celery = Celery("kv-test", broker=redis_url, backend=redis_url)

    def close(self) -> None:
        self.celery.close()

    def _collect(self, results: list, answer: Callable[[Any], Answer]) -> list[Answer | Exception]:
        collected: list[Answer | Exception] = []
        for result in results:
            try:
                collected.append(answer(result.get(timeout=ANSWER_TIMEOUT)))
            except Exception as exc:
                collected.append(exc)
        return collected

    def put_all(self, items: list[tuple[str, str]]) -> list[Answer | Exception]:
        results = [self.celery.send_task("kv.put", args=[k, v]) for k, v in items]
        return self._collect(results, Answer)

    def get_all(self, keys: list[str]) -> list[Answer | Exception]:
        results = [self.celery.send_task("kv.get", args=[key]) for key in keys]
        return self._collect(results, lambda got: Answer(got[1], got[0]))


def test_celery_prefork(redis_url, endpoint, cache_name, tmp_path):
    """celery worker --pool prefork --concurrency 4: one Client made and used in the main
    process before the pool forks."""
    node = f"apps-{uuid.uuid4().hex[:8]}@localhost"
    argv = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork",
            "--concurrency", str(WORKERS), "-O", "fair", "--hostname", node,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel", "WARNING"]
    env = {"IGNITE_BROKER": endpoint, "APP_CACHE": cache_name, "APP_REDIS_URL": redis_url}
    app = CeleryApp(redis_url)
    try:
        with Server(argv, env, tmp_path / "celery.log") as server:
            workers = server.wait_ready(lambda: True)
            exercise(app, workers, endpoint, cache_name)
            assert preloaded_by(endpoint, cache_name) == server.pid
    finally:
        app.close()
