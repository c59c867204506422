"""broker/sockets.py and broker/notify.py without a broker: which inherited fds are adopted
for which endpoint, what is handed on, which socket files are removed at exit; what the
notify socket receives."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import zmq

from broker import notify
from broker.errors import ConfigError
from broker.sockets import OWNED_VAR, Listeners, inherited_fds


@pytest.fixture
def rundir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    return run


def _listening(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(8)
    return sock


def test_inherited_fds_follow_systemds_convention():
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "3", "LISTEN_FDNAMES": "unix:ipc",
           OWNED_VAR: "1:0", "OTHER": "kept"}
    assert inherited_fds(env) == [(3, "unix", True), (4, "ipc", False), (5, "unknown", False)]
    assert env == {"OTHER": "kept"}  # unset, so that children do not inherit them


@pytest.mark.parametrize("env", [
    {"LISTEN_PID": "1", "LISTEN_FDS": "2"},  # meant for another process
    {"LISTEN_FDS": "2"},  # no pid: not for us either (as sd_listen_fds)
    {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "two"},
])
def test_inherited_fds_meant_for_someone_else_are_ignored(env):
    assert inherited_fds(env) == []
    assert not any(k.startswith("LISTEN_") for k in env)


def test_adopts_by_path_and_hands_on(rundir):
    unix, ipc = rundir / "broker.stream", rundir / "broker.sock"
    a, b = _listening(unix), _listening(ipc)
    listeners = Listeners([(os.dup(a.fileno()), "unix", False),
                           (os.dup(b.fileno()), "ipc", True)])
    ours = listeners.listen(f"unix://{unix}", 0o660)
    assert ours.getsockname() == str(unix) and not ours.getblocking()
    listeners.listen(f"ipc://{ipc}", 0o660)
    fds, env = listeners.handover_env()
    assert len(fds) == 2 and env["LISTEN_FDNAMES"] == "unix:ipc" and env[OWNED_VAR] == "0:1"
    listeners.close()
    # systemd's socket stays; the one a broker made is removed by the last broker
    assert unix.exists() and not ipc.exists()
    a.close()
    b.close()


def test_a_handed_over_socket_file_is_kept(rundir):
    listeners = Listeners()
    listeners.listen(f"unix://{rundir}/broker.stream", 0o660)
    assert (rundir / "broker.stream").stat().st_mode & 0o777 == 0o660
    listeners.handed_over = True
    listeners.close()
    assert (rundir / "broker.stream").exists()


def test_a_name_that_contradicts_the_scheme_is_refused(rundir):
    sock = _listening(rundir / "broker.sock")
    listeners = Listeners([(os.dup(sock.fileno()), "unix", False)])
    with pytest.raises(ConfigError, match="named 'unix'"):
        listeners.listen(f"ipc://{rundir}/broker.sock", 0o660)
    sock.close()


def test_an_inherited_socket_no_endpoint_wants_is_closed(rundir):
    sock = _listening(rundir / "elsewhere.sock")
    fd = os.dup(sock.fileno())
    listeners = Listeners([(fd, "ipc", False)])
    assert listeners.unused() == [str(rundir / "elsewhere.sock")]
    with pytest.raises(OSError):
        os.fstat(fd)
    sock.close()


def test_a_live_socket_is_not_stolen(rundir):
    sock = _listening(rundir / "broker.sock")
    with pytest.raises(ConfigError, match="another process accepts"):
        Listeners().listen(f"ipc://{rundir}/broker.sock", 0o660)
    sock.close()


def test_zeromq_serves_on_our_socket_ipc_and_tcp(rundir):
    context = zmq.Context()
    listeners = Listeners()
    router = context.socket(zmq.ROUTER)
    router.linger = 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoints = [f"ipc://{rundir}/broker.sock", f"tcp://127.0.0.1:{port}"]
    try:
        for endpoint in endpoints:
            listeners.bind_zmq(router, endpoint, 0o660)
        for endpoint in endpoints:
            dealer = context.socket(zmq.DEALER)
            dealer.linger = 0
            dealer.connect(endpoint)
            dealer.send(endpoint.encode())
            assert router.poll(30_000)
            assert router.recv_multipart()[1] == endpoint.encode()
            dealer.close()
        # a successor adopts the tcp socket by its address
        fds, env = listeners.handover_env()
        assert env["LISTEN_FDNAMES"] == "ipc:tcp"
        successor = Listeners([(os.dup(fds[1]), "tcp", False)])
        assert successor.listen(f"tcp://127.0.0.1:{port}", 0).fileno() != fds[1]
        successor.close()
    finally:
        router.close()
        listeners.close()
        context.term()
    assert not (rundir / "broker.sock").exists()


def test_notify_messages_reach_the_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    notify.reloading()
    message = sock.recv(256).decode().split("\n")
    assert message[0] == "RELOADING=1" and int(message[1].split("=")[1]) > 0
    notify.ready("1/1 nodes up")
    assert sock.recv(256) == b"READY=1\nSTATUS=1/1 nodes up"
    notify.detach()
    notify.stopping()  # after detach: nothing more
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(256)
    sock.close()


@pytest.mark.parametrize(("usec", "pid", "interval"), [
    ("2000000", None, 1.0), ("2000000", "self", 1.0), ("2000000", "1", None),
    (None, None, None), ("0", None, None), ("x", None, None),
])
def test_watchdog_interval_is_half_and_only_for_us(monkeypatch, usec, pid, interval):
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(os.getpid()) if value == "self" else value)
    assert notify.watchdog_interval() == interval


def test_a_tcp_interface_name_is_left_to_libzmq():
    context = zmq.Context()
    listeners = Listeners()
    router = context.socket(zmq.ROUTER)
    router.linger = 0
    try:
        listeners.bind_zmq(router, "tcp://lo:0", 0)  # an interface only libzmq resolves
        assert router.getsockopt(zmq.LAST_ENDPOINT).startswith(b"tcp://127.0.0.1:")
        assert listeners.listeners == []  # not ours to hand over
    finally:
        router.close()
        context.term()
