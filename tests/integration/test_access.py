"""Local access control against the real broker and real nodes (issue 10, items 8 and 10): the
socket directory cannot be squatted, the stub does not connect into a directory anyone could
have made, tcp:// needs CURVE, unix:// and ipc:// peers are checked against the allow-list,
and secrets in the configuration are never echoed.

Runs as root: other users are real ones (``nobody``, ``daemon``), reached with ``setpriv`` for
whole processes and with fork + setuid for a worker that has the stub loaded already."""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

from broker.devcluster.brokerproc import BrokerProcess, render_toml
from libclient import AioClient, Client
from libclient.exceptions import BrokerUnavailable, ParameterError

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as other users"),
]

NOBODY = pwd.getpwnam("nobody")
DAEMON = pwd.getpwnam("daemon")  # a second real user: the one the allow-list admits
REPO = Path(__file__).resolve().parents[2]


# -- helpers ------------------------------------------------------------------------------------

def _cli(*args: str, user: pwd.struct_passwd | None = None, env: dict[str, str] | None = None,
         timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``ignite-broker ARGS`` in a subprocess, as ``user`` when given (setpriv)."""
    command = [sys.executable, "-m", "broker", *args]
    if user is not None:
        command = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                   "--clear-groups", *command]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _run_as(user: pwd.struct_passwd, work: Callable[[], str]) -> str:
    """``work()`` in a forked child that became ``user`` (no supplementary groups); its
    result, or ``Type: message`` of what it raised."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            try:
                result = work()
            except Exception as exc:
                result = f"{type(exc).__name__}: {exc}"
            os.write(write_end, result.encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as fh:
        while chunk := fh.read():
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return b"".join(chunks).decode()


def _roundtrip(endpoint: str, **kwargs: str) -> str:
    value = f"v-{uuid.uuid4().hex[:8]}"
    with Client(broker=endpoint, handshake_timeout=3.0, **kwargs) as client:
        client.connect()
        cache = client.get_or_create_cache("access-test")
        cache.put("k", value)
        got = cache.get("k")
    return "ok" if got == value else f"wrong value {got!r}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_log(broker: BrokerProcess, pattern: str, timeout: float = 30.0) -> str:
    """Until the broker logged a line matching ``pattern`` (an event, not a timing check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in broker.log_path.read_text(errors="replace").splitlines():
            if re.search(pattern, line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line matching {pattern!r}:\n{broker.log()}")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory under /tmp that other users can traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="ignite-access-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- item 8: the socket directory ---------------------------------------------------------------

@pytest.fixture
def squatted_default_dir() -> Iterator[Path]:
    """/tmp/ignite-broker-<daemon's uid>, made first by nobody: the squat of issue 10 item 8."""
    path = Path(f"/tmp/ignite-broker-{DAEMON.pw_uid}")
    if path.exists():
        pytest.skip(f"{path} exists already; not touching it")
    path.mkdir(mode=0o755)
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_broker_refuses_a_socket_directory_owned_by_another_user(ignite_node,
                                                                 squatted_default_dir):
    # The broker runs as daemon with no XDG_RUNTIME_DIR: its default directory is the one
    # nobody made first.
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_RUNTIME_DIR", "RUNTIME_DIRECTORY", "IGNITE_BROKER")}
    host, port = ignite_node.addresses[0]
    done = _cli("run", "--node", f"{host}:{port}", user=DAEMON, env=env)
    assert done.returncode == 2, done.stderr
    assert str(squatted_default_dir) in done.stderr
    assert "uid 65534 (nobody)" in done.stderr
    assert "mode 0755" in done.stderr
    assert list(squatted_default_dir.iterdir()) == []  # no lock file, no socket left there


def test_broker_refuses_a_socket_directory_writable_by_others(ignite_node, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o770)
    broker = BrokerProcess(ignite_node.addresses, workdir=tmp_path)
    done = _cli("run", "--config", str(broker.config_path))
    assert done.returncode == 2
    assert f"directory {run} (uid 0 (root), mode 0770) is writable by group or others" \
        in done.stderr
    checked = _cli("check-config", "--config", str(broker.config_path))
    assert checked.returncode == 2 and "mode 0770" in checked.stderr


def test_broker_refuses_a_lock_file_directory_owned_by_another_user(ignite_node, tmp_path):
    locks = tmp_path / "locks"
    locks.mkdir(mode=0o755)
    os.chown(locks, NOBODY.pw_uid, NOBODY.pw_gid)
    broker = BrokerProcess(ignite_node.addresses, workdir=tmp_path,
                           settings={"broker.lock_file": str(locks / "broker.lock")})
    done = _cli("run", "--config", str(broker.config_path))
    assert done.returncode == 2
    assert f"{locks} belongs to uid 65534 (nobody)" in done.stderr
    assert not (locks / "broker.lock").exists()


@pytest.fixture
def broker(ignite_node, tmp_path) -> Iterator[BrokerProcess]:
    with BrokerProcess(ignite_node.addresses, workdir=tmp_path) as proc:
        proc.start()
        yield proc


@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
@pytest.mark.parametrize("transport", ["unix", "ipc"])
def test_stub_refuses_a_world_writable_socket_directory(broker, transport, flavour):
    endpoint = broker.stream_endpoint if transport == "unix" else broker.endpoint
    run = Path(endpoint.split("://", 1)[1]).parent
    assert _roundtrip(endpoint) == "ok"
    run.chmod(0o777)  # now anyone could have replaced the socket
    try:
        if flavour == "sync":
            with pytest.raises(BrokerUnavailable) as err, Client(broker=endpoint) as client:
                client.connect()
        else:
            async def connect() -> None:
                client = AioClient(broker=endpoint)
                try:
                    await client.connect()
                finally:
                    await client.close()

            with pytest.raises(BrokerUnavailable) as err:
                asyncio.run(connect())
    finally:
        run.chmod(0o750)
    assert f"refusing to connect to {run}/" in str(err.value)
    assert "writable by every user" in str(err.value)
    assert err.value.maybe_applied is False
    assert _roundtrip(endpoint) == "ok"  # the same stub connects once the mode is right


def test_stub_refuses_a_strangers_socket_directory_in_tmp(shared_dir):
    # nobody made a directory in /tmp and listens in it like a broker would
    squat = shared_dir / "ignite-broker"
    squat.mkdir(mode=0o755)
    os.chown(squat, NOBODY.pw_uid, NOBODY.pw_gid)
    Path(shared_dir).chmod(0o1777)  # a /tmp-like parent: every user may create directories
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(squat / "broker.stream"))
    listener.listen(8)
    try:
        with pytest.raises(BrokerUnavailable) as err, \
                Client(broker=f"unix://{squat}/broker.stream") as client:
            client.connect()
        readable, _, _ = select.select([listener], [], [], 0)
        assert readable == []  # nothing ever reached the squatter
    finally:
        listener.close()
    assert "belongs to uid 65534" in str(err.value)


# -- item 10: tcp:// requires CURVE -------------------------------------------------------------

def test_tcp_without_curve_refuses_to_start(ignite_node, tmp_path):
    port = _free_port()
    broker = BrokerProcess(ignite_node.addresses, workdir=tmp_path)
    broker.settings["broker.endpoints"].append(f"tcp://127.0.0.1:{port}")
    broker.config_path.write_text(render_toml(broker.settings))
    done = _cli("run", "--config", str(broker.config_path))
    assert done.returncode == 2
    assert f"tcp://127.0.0.1:{port} without CURVE" in done.stderr
    with socket.socket() as probe:  # and nothing listens there
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    checked = _cli("check-config", "--endpoint", f"tcp://0.0.0.0:{port}")
    assert checked.returncode == 2
    assert "would serve every host that can reach this port" in checked.stderr
    assert "broker.curve_secret_key_file" in checked.stderr


@pytest.fixture
def curve_broker(ignite_node, tmp_path) -> Iterator[tuple[BrokerProcess, str, dict]]:
    """A broker on ipc, unix and tcp://127.0.0.1 with CURVE: its secret key made by
    ``ignite-broker keygen``, one client key allowed (in a keys file)."""
    secret_file = tmp_path / "server.secret"
    made = _cli("keygen", "--secret-file", str(secret_file))
    assert made.returncode == 0 and "secret" not in made.stdout
    server_public = re.search(r'public-key = "(.{40})"', made.stdout).group(1)
    assert secret_file.stat().st_mode & 0o777 == 0o600
    public, secret = zmq.curve_keypair()
    keys_file = tmp_path / "clients.keys"
    keys_file.write_text(f"# allowed workers\n{public.decode()} worker-1\n")
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    broker = BrokerProcess(ignite_node.addresses, workdir=tmp_path, settings={
        "broker.curve_secret_key_file": str(secret_file),
        "broker.curve_client_keys_file": str(keys_file),
    })
    broker.settings["broker.endpoints"].append(endpoint)
    broker.config_path.write_text(render_toml(broker.settings))
    keys = {"curve_serverkey": server_public, "curve_publickey": public.decode(),
            "curve_secretkey": secret.decode(), "keys_file": keys_file}
    with broker:
        broker.start()
        yield broker, endpoint, keys


def _curve_kwargs(keys: dict) -> dict[str, str]:
    return {k: v for k, v in keys.items() if k.startswith("curve_")}


def test_tcp_with_curve_serves_a_keyed_client_and_refuses_an_unknown_key(curve_broker,
                                                                          monkeypatch):
    broker, endpoint, keys = curve_broker
    assert _roundtrip(endpoint, **_curve_kwargs(keys)) == "ok"

    # the asyncio stub, keys from the environment
    monkeypatch.setenv("IGNITE_BROKER_CURVE_SERVERKEY", keys["curve_serverkey"])
    monkeypatch.setenv("IGNITE_BROKER_CURVE_PUBLICKEY", keys["curve_publickey"])
    monkeypatch.setenv("IGNITE_BROKER_CURVE_SECRETKEY", keys["curve_secretkey"])

    async def aio_roundtrip() -> object:
        client = AioClient(broker=endpoint, handshake_timeout=3.0)
        try:
            await client.connect()
            cache = await client.get_or_create_cache("access-test")
            await cache.put("aio", 42)
            return await cache.get("aio")
        finally:
            await client.close()

    assert asyncio.run(aio_roundtrip()) == 42

    stranger_public, stranger_secret = zmq.curve_keypair()
    stranger = {**_curve_kwargs(keys), "curve_publickey": stranger_public.decode(),
                "curve_secretkey": stranger_secret.decode()}
    with pytest.raises(BrokerUnavailable, match="no broker reachable"), \
            Client(broker=endpoint, handshake_timeout=2.0, **stranger) as client:
        client.connect()
    line = _wait_for_log(broker, r"peer_refused.*CURVE public key not in")
    assert stranger_public.decode() in line

    for name in ("SERVERKEY", "PUBLICKEY", "SECRETKEY"):
        monkeypatch.delenv(f"IGNITE_BROKER_CURVE_{name}")
    with pytest.raises(ParameterError, match="only to CURVE clients"), \
            Client(broker=endpoint, handshake_timeout=2.0) as client:
        client.connect()

    # a plain ZeroMQ peer (no CURVE) gets nothing, not even an error
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(endpoint)
    try:
        from protocol.ipc import pack_request

        dealer.send(pack_request(1, "ping", {}, 0))
        assert dealer.poll(2000) == 0
    finally:
        dealer.close()
        ctx.term()
    assert broker.proc.poll() is None


def test_a_revoked_curve_key_is_refused_after_sighup(curve_broker):
    broker, endpoint, keys = curve_broker
    assert _roundtrip(endpoint, **_curve_kwargs(keys)) == "ok"
    keys["keys_file"].write_text("# nobody any more\n")
    os.kill(broker.proc.pid, signal.SIGHUP)
    _wait_for_log(broker, r"curve_client_keys_reloaded.*keys=0")
    with pytest.raises(BrokerUnavailable, match="no broker reachable"), \
            Client(broker=endpoint, handshake_timeout=2.0, **_curve_kwargs(keys)) as client:
        client.connect()


# -- item 10: unix:// and ipc:// peers against the allow-list -----------------------------------

@pytest.fixture
def allow_list_broker(ignite_node, shared_dir) -> Iterator[BrokerProcess]:
    """A broker whose sockets every user could open (mode 0666 in a 0755 directory), so only
    its allow-list (daemon's uid) stands between them and the cluster."""
    (shared_dir / "run").mkdir(mode=0o755)
    with BrokerProcess(ignite_node.addresses, workdir=shared_dir, settings={
            "broker.allow_uids": [DAEMON.pw_uid], "broker.socket_mode": 0o666}) as proc:
        proc.start()
        yield proc


def test_unix_peer_outside_the_allow_list_is_refused(allow_list_broker):
    endpoint = allow_list_broker.stream_endpoint
    refused = _run_as(NOBODY, lambda: _roundtrip(endpoint))
    assert refused.startswith("BrokerUnavailable: the broker at ")  # connection closed at once
    assert _run_as(DAEMON, lambda: _roundtrip(endpoint)) == "ok"
    line = _wait_for_log(allow_list_broker, r"peer_refused.*transport=unix")
    assert f"uid={NOBODY.pw_uid}" in line and "pid=" in line


def test_ipc_peer_outside_the_allow_list_is_refused(allow_list_broker):
    endpoint = allow_list_broker.endpoint
    refused = _run_as(NOBODY, lambda: _roundtrip(endpoint))
    assert refused.startswith("BrokerUnavailable: no broker reachable")  # ZAP said 400
    assert _run_as(DAEMON, lambda: _roundtrip(endpoint)) == "ok"
    line = _wait_for_log(allow_list_broker, r"peer_refused.*transport=ipc")
    assert f"uid={NOBODY.pw_uid}" in line and "pid=" in line


# -- item 10: secrets in the configuration ------------------------------------------------------

@pytest.mark.parametrize("value", ["1234567", "31415.9265", "[1234567]"])
def test_numeric_password_is_never_echoed(ignite_node, tmp_path, value):
    broker = BrokerProcess(ignite_node.addresses, workdir=tmp_path,
                           settings={"cluster.username": "ignite"})
    good_config = broker.config_path.read_text()
    bad_config = good_config.replace('username = "ignite"',
                                     f'username = "ignite"\npassword = {value}')
    broker.config_path.write_text(bad_config)
    for command in ("run", "check-config"):
        done = _cli(command, "--config", str(broker.config_path))
        assert done.returncode == 2
        assert "setting cluster.password must be str" in done.stderr
        assert not re.search(r"1234567|31415|9265", done.stdout + done.stderr)
    # a running broker reloading such a file logs the refusal, not the value
    broker.config_path.write_text(good_config)
    with broker:
        broker.start()
        broker.config_path.write_text(bad_config)
        os.kill(broker.proc.pid, signal.SIGHUP)
        line = _wait_for_log(broker, r"reload_failed")
        assert "cluster.password must be str" in line
    # Timestamps ("...30.926537Z") and pids hold any digits: they are not the value.
    log = re.sub(r"^\S+Z |\bpid=\d+", "", broker.log_path.read_text(), flags=re.M)
    assert not re.search(r"1234567|31415|9265", log)


def test_password_file_readable_by_others_is_warned(ignite_auth, tmp_path):
    user, password = ignite_auth.credentials
    password_file = tmp_path / "password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o644)
    settings = {"cluster.username": user, "cluster.password_file": str(password_file)}
    broker = BrokerProcess(ignite_auth.addresses, workdir=tmp_path, settings=settings)
    checked = _cli("check-config", "--config", str(broker.config_path))
    assert checked.returncode == 0
    assert f"warning: cluster.password_file: {password_file} (mode 0644) is readable" \
        in checked.stderr
    with broker:
        broker.start()
        assert _roundtrip(broker.endpoint) == "ok"  # served: a warning, not a refusal
    line = _wait_for_log(broker, r"secret_file_readable_by_others")
    assert str(password_file) in line and "0644" in line

    password_file.chmod(0o646)  # anyone could swap the password: refused
    for command in ("run", "check-config"):
        done = _cli(command, "--config", str(broker.config_path))
        assert done.returncode == 2
        assert "is writable by every user" in done.stderr


def test_password_file_readable_only_by_the_broker_is_not_warned(ignite_auth, tmp_path):
    user, password = ignite_auth.credentials
    password_file = tmp_path / "password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    settings = {"cluster.username": user, "cluster.password_file": str(password_file)}
    with BrokerProcess(ignite_auth.addresses, workdir=tmp_path, settings=settings) as broker:
        broker.start()
        assert _roundtrip(broker.endpoint) == "ok"
    assert "secret_file_readable_by_others" not in broker.log_path.read_text()
