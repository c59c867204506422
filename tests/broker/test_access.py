"""The access rules, without sockets: socket directories (broker and stub side), secret files,
the peer allow-list, ZAP answers, CURVE key loading, and the config checks that go with them."""

from __future__ import annotations

import os
import stat

import pytest
import zmq
import zmq.auth

from broker import access, log
from broker.access import Access, PeerPolicy, Refusals
from broker.config import load
from broker.errors import ConfigError
from libclient.exceptions import ParameterError
from libclient.transport import curve_keys, socket_dir_refusal

DIR = stat.S_IFDIR
NOBODY = 65534


# -- broker: socket directory --------------------------------------------------------------------

def test_the_brokers_own_0750_directory_is_accepted():
    assert access.socket_dir_problem("/run/x", 1000, DIR | 0o750, 1000) is None
    assert access.socket_dir_problem("/run/x", 0, DIR | 0o755, 0) is None


def test_a_directory_owned_by_another_user_is_refused_naming_owner_and_mode():
    problem = access.socket_dir_problem("/tmp/ignite-broker-1000", NOBODY, DIR | 0o755, 1000)
    assert problem is not None
    assert "/tmp/ignite-broker-1000" in problem
    assert "uid 65534" in problem
    assert "0755" in problem


@pytest.mark.parametrize("mode", [0o770, 0o757, 0o777, 0o1777])
def test_a_directory_writable_by_group_or_others_is_refused(mode):
    problem = access.socket_dir_problem("/srv/s", 1000, DIR | mode, 1000)
    assert problem is not None and f"{mode:04o}" in problem and "writable" in problem


def test_a_file_is_not_a_socket_directory():
    assert "not a directory" in access.socket_dir_problem("/x", 0, stat.S_IFREG | 0o600, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_ensure_socket_dir_refuses_a_real_directory_of_nobody(tmp_path):
    squatted = tmp_path / "run"
    squatted.mkdir(mode=0o755)
    os.chown(squatted, NOBODY, NOBODY)
    with pytest.raises(ConfigError, match="belongs to uid 65534"):
        access.ensure_socket_dir(str(squatted))
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    os.lchown(link, NOBODY, NOBODY)
    with pytest.raises(ConfigError, match="symbolic link owned by uid 65534"):
        access.ensure_socket_dir(str(link))


def test_ensure_socket_dir_creates_a_private_directory(tmp_path):
    target = tmp_path / "a" / "run"
    access.ensure_socket_dir(str(target))
    assert stat.S_IMODE(target.stat().st_mode) & 0o022 == 0


# -- stub: socket directory ----------------------------------------------------------------------

def _never() -> int:
    raise AssertionError("the parent's mode is not needed here")


def test_stub_accepts_its_own_and_roots_directories_without_a_second_stat():
    assert socket_dir_refusal("/run/user/1000/ignite-broker", 1000, DIR | 0o700, 1000,
                              _never) is None
    assert socket_dir_refusal("/run/ignite-broker", 0, DIR | 0o750, 1000, _never) is None


def test_stub_refuses_a_world_writable_directory_even_with_the_sticky_bit():
    why = socket_dir_refusal("/tmp", 0, DIR | 0o1777, 1000, _never)
    assert why is not None and "writable by every user" in why


def test_stub_accepts_the_service_users_directory_in_a_root_only_parent():
    # systemd: /run/ignite-broker owned by the service user, inside root's 0755 /run
    assert socket_dir_refusal("/run/ignite-broker", 998, DIR | 0o750, 1000,
                              lambda: DIR | 0o755) is None


def test_stub_refuses_a_strangers_directory_in_tmp():
    why = socket_dir_refusal("/tmp/ignite-broker-1000", 1001, DIR | 0o755, 1000,
                             lambda: DIR | 0o1777)
    assert why is not None and "uid 1001" in why and "/tmp" in why


def test_stub_refuses_a_strangers_directory_whose_parent_cannot_be_read():
    assert socket_dir_refusal("/x/y", 1001, DIR | 0o755, 1000, lambda: None) is not None


# -- secret files --------------------------------------------------------------------------------

def test_secret_file_modes():
    assert access.secret_file_problem("/p", stat.S_IFREG | 0o600) is None
    assert access.secret_file_problem("/p", stat.S_IFREG | 0o400) is None
    assert access.secret_file_problem("/p", stat.S_IFREG | 0o640)[0] == "warn"
    assert access.secret_file_problem("/p", stat.S_IFREG | 0o644)[0] == "warn"
    kind, why = access.secret_file_problem("/p", stat.S_IFREG | 0o602)
    assert kind == "refuse" and "0602" in why


# -- the peer allow-list -------------------------------------------------------------------------

def test_an_empty_allow_list_serves_everyone():
    policy = PeerPolicy(broker_uid=998)
    assert not policy.active
    assert policy.allows(NOBODY, NOBODY)


def test_allow_list_by_uid_gid_and_group_membership():
    looked_up = []

    def groups_of(uid: int) -> frozenset[int]:
        looked_up.append(uid)
        return frozenset({1000, 998}) if uid == 1000 else frozenset({uid})

    policy = PeerPolicy(frozenset({1001}), frozenset({998}), broker_uid=997, groups_of=groups_of)
    assert policy.allows(1001, 1001)                # listed uid
    assert policy.allows(1002, 998)                 # primary gid listed
    assert policy.allows(1000, 1000)                # member of group 998 (supplementary)
    assert policy.allows(1000, 1000)
    assert looked_up == [1000]                      # one group lookup per uid
    assert not policy.allows(NOBODY, NOBODY)
    assert policy.allows(0, 0)                      # root
    assert policy.allows(997, 997)                  # the broker's own uid


def test_zap_peer_address_of_ipc():
    assert access.parse_zap_peer(b"localhost:65534:65534:4242") == (4242, 65534, 65534)
    assert access.parse_zap_peer(b"127.0.0.1") is None
    assert access.parse_zap_peer(b"localhost:a:b:c") is None


# -- ZAP answers ---------------------------------------------------------------------------------

def _zap(domain: bytes, address: bytes, mechanism: bytes, *credentials: bytes) -> list[bytes]:
    return [b"1.0", b"7", domain, address, b"", mechanism, *credentials]


def test_zap_answers_curve_by_the_listed_keys():
    public, _ = zmq.curve_keypair()
    other, _ = zmq.curve_keypair()
    acc = Access(PeerPolicy(), curve_secret=zmq.curve_keypair()[1],
                 client_keys=frozenset({public}))
    raw = zmq.utils.z85.decode(public)
    ok = acc.zap_reply(_zap(b"tcp", b"10.0.0.9", b"CURVE", raw))
    assert ok[:3] == [b"1.0", b"7", b"200"] and ok[4] == public
    no = acc.zap_reply(_zap(b"tcp", b"10.0.0.9", b"CURVE", zmq.utils.z85.decode(other)))
    assert no[2] == b"400"
    assert acc.zap_reply(_zap(b"tcp", b"10.0.0.9", b"NULL"))[2] == b"400"
    assert acc.refusals["tcp"].count == 2


def test_zap_answers_ipc_by_the_peer_policy():
    acc = Access(PeerPolicy(frozenset({1000}), broker_uid=998, groups_of=lambda uid: frozenset()))
    assert acc.zap_reply(_zap(b"ipc", b"localhost:1000:1000:5", b"NULL"))[2] == b"200"
    assert acc.zap_reply(_zap(b"ipc", b"localhost:65534:65534:5", b"NULL"))[2] == b"400"
    assert acc.zap_reply(_zap(b"ipc", b"garbage", b"NULL"))[2] == b"400"
    assert acc.zap_reply([b"2.0", b"1"])[2] == b"500"


def test_refusals_are_all_counted_and_logged_through_a_throttle():
    now = [0.0]
    refusals = Refusals(log.Throttle(burst=1, interval=10.0, clock=lambda: now[0]))
    assert refusals.refused_peer(uid=1)
    assert not refusals.refused_peer(uid=1)
    assert not refusals.refused_peer(uid=2)
    now[0] = 10.0
    assert refusals.refused_peer(uid=3)
    assert refusals.count == 4


# -- CURVE keys ----------------------------------------------------------------------------------

def test_server_secret_from_a_bare_key_or_a_zmq_certificate(tmp_path):
    _, secret = zmq.curve_keypair()
    bare = tmp_path / "server.secret"
    bare.write_text("# the broker's key\n" + secret.decode() + "\n")
    assert access.load_server_secret(str(bare)) == secret
    _, cert = zmq.auth.create_certificates(str(tmp_path), "server")
    assert zmq.curve_public(access.load_server_secret(cert)) == \
        zmq.auth.load_certificate(cert)[0]


def test_a_malformed_server_secret_is_refused_without_echoing_it(tmp_path):
    bad = tmp_path / "server.secret"
    bad.write_text("hunter2-not-a-z85-key\n")
    with pytest.raises(ConfigError) as err:
        access.load_server_secret(str(bad))
    assert "hunter2" not in str(err.value) and "40 characters" in str(err.value)


def test_client_keys_from_the_list_a_file_and_a_certificate_directory(tmp_path):
    keys = [zmq.curve_keypair()[0] for _ in range(3)]
    listed = tmp_path / "clients.txt"
    listed.write_text(f"# workers\n{keys[1].decode()}  web-1\n\n  {keys[2].decode()}\n")
    certs = tmp_path / "certs"
    certs.mkdir()
    public_file, _ = zmq.auth.create_certificates(str(certs), "worker")
    cert_key = zmq.auth.load_certificate(public_file)[0]
    assert access.load_client_keys([keys[0].decode()], str(listed)) == set(keys)
    assert access.load_client_keys([], str(certs)) == {cert_key}
    with pytest.raises(ConfigError, match="curve_client_keys"):
        access.load_client_keys(["short"], "")


def test_stub_curve_keys_need_all_three_and_never_echo_the_secret():
    pub, sec = zmq.curve_keypair()
    assert curve_keys({}, {}) is None
    env = {"IGNITE_BROKER_CURVE_SERVERKEY": pub.decode(),
           "IGNITE_BROKER_CURVE_PUBLICKEY": pub.decode(),
           "IGNITE_BROKER_CURVE_SECRETKEY": sec.decode()}
    assert curve_keys({}, env) == (pub, pub, sec)
    assert curve_keys({"curve_secretkey": sec}, {**env, "IGNITE_BROKER_CURVE_SECRETKEY": ""}) \
        == (pub, pub, sec)
    with pytest.raises(ParameterError) as err:
        curve_keys({"curve_serverkey": pub.decode(), "curve_secretkey": "s3cret-short"}, {})
    assert "s3cret" not in str(err.value)


# -- config --------------------------------------------------------------------------------------

def _load(tmp_path, body: str):
    path = tmp_path / "b.toml"
    path.write_text(body)
    return load(str(path))


@pytest.mark.parametrize("value", ["1234567", "31415.9265", "true", "[98765]"])
def test_a_non_string_password_is_refused_without_echoing_it(tmp_path, value):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, f"[cluster]\npassword = {value}\n")
    message = str(err.value)
    assert "cluster.password must be str" in message and "quote it" in message
    for secret in ("1234567", "31415", "9265", "98765", "True", "true"):
        assert secret not in message


@pytest.mark.parametrize("endpoint, reach", [
    ("tcp://0.0.0.0:5555", "every host that can reach this port"),
    ("tcp://*:5555", "every host that can reach this port"),
    ("tcp://127.0.0.1:5555", "anyone who can reach it"),
])
def test_tcp_without_curve_is_refused(tmp_path, endpoint, reach):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, f'[broker]\nendpoints = ["{endpoint}"]\n')
    assert endpoint in str(err.value) and reach in str(err.value)
    assert "curve_secret_key_file" in str(err.value)


def test_tcp_with_curve_settings_loads(tmp_path):
    public, _ = zmq.curve_keypair()
    cfg = _load(tmp_path, '[broker]\nendpoints = ["tcp://127.0.0.1:5555"]\n'
                          f'curve_secret_key_file = "{tmp_path}/s"\n'
                          f'curve_client_keys = ["{public.decode()}"]\n')
    assert cfg.broker_curve_client_keys == [public.decode()]


@pytest.mark.parametrize("body, message", [
    ('[broker]\nadmin_endpoint = "tcp://127.0.0.1:1"\n', "must be ipc://"),
    ('[broker]\nallow_uids = [-1]\n', "numeric ids"),
    ('[broker]\nallow_gids = ["www-data"]\n', "list of int"),
    ('[broker]\nallow_uids = [true]\n', "list of int"),
])
def test_access_settings_are_validated(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, body)


def test_socket_dirs_cover_sockets_admin_and_lock(tmp_path):
    cfg = _load(tmp_path, '[broker]\nendpoints = ["ipc:///a/b.sock", "unix:///c/d.stream", '
                          '"ipc://@abstract", "tcp://127.0.0.1:1"]\n'
                          'admin_endpoint = "ipc:///a/admin.sock"\nlock_file = "/e/f.lock"\n'
                          f'curve_secret_key_file = "{tmp_path}/s"\n'
                          'curve_client_keys_file = "/k"\n')
    assert access.socket_dirs(cfg) == ["/a", "/c", "/e"]


def test_both_clients_take_the_curve_kwargs():
    from libclient import AioClient, Client

    pub, sec = (k.decode() for k in zmq.curve_keypair())
    kwargs = {"curve_serverkey": pub, "curve_publickey": pub, "curve_secretkey": sec}
    Client(broker="tcp://127.0.0.1:1", **kwargs)
    AioClient(broker="tcp://127.0.0.1:1", **kwargs)
    with pytest.raises(ParameterError, match="curve_secretkey"):
        Client(broker="tcp://127.0.0.1:1", curve_serverkey=pub, curve_publickey=pub).connect()
