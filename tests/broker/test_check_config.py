"""``check-config`` refuses what ``run`` would fail on, naming the setting; environment
overrides (``IGNITE_BROKER__SECTION__KEY``) are typed by the settings table; the CLI's
options and help.  The CLI runs as a subprocess, as an operator would run it (no JVM)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.config import ENV_PREFIX, SETTINGS, env_overrides, load
from broker.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict[str, str] | None = None,
         user: pwd.struct_passwd | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "broker", *args]
    if user is not None:
        command = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                   "--clear-groups", *command]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory other users may read (pytest's own tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="check-config-"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def _config(workdir: Path, body: str) -> str:
    path = workdir / "broker.toml"
    path.write_text(f'[broker]\nendpoints = ["unix://{workdir}/run/b.stream"]\n' + body)
    path.chmod(0o644)
    return str(path)


def test_a_good_config_is_printed_with_secrets_masked(workdir):
    done = _cli("check-config", "--config", _config(workdir, '[cluster]\npassword = "pw"\n'))
    assert done.returncode == 0, done.stderr
    assert '"cluster.password": "***"' in done.stdout


@pytest.mark.parametrize("body, message", [
    ('[cluster]\npassword_file = "{w}/missing"\n', "cluster.password_file: "),
    ('[tls]\nenabled = true\nca_file = "{w}/ca.pem"\n', "tls.ca_file: {w}/ca.pem does not"),
    ('[tls]\nenabled = true\ncert_file = "{w}/c.pem"\nkey_file = "{w}/k.pem"\n',
     "tls.cert_file: {w}/c.pem does not exist"),
    ('[limits]\nrequest_timeout = -1\n', "limits.request_timeout must be more than 0"),
    ('[limits]\nmax_in_flight_per_worker = 0\n',
     "limits.max_in_flight_per_worker must be more than 0"),
    ('[cluster]\nconnect_timeout = 0\n', "cluster.connect_timeout must be more than 0"),
    ('[limits]\nqueue_wait = -0.5\n', "limits.queue_wait must be 0 or more"),
    ('[cluster]\nnodes = ["h:70000"]\n', "cluster.nodes: node address 'h:70000': the port"),
    ('[broker]\nadmin_socket_mode = 4096\n', "broker.admin_socket_mode must be a file mode"),
])
def test_check_config_refuses_what_run_would_fail_on(workdir, body, message):
    path = workdir / "broker.toml"
    path.write_text(body.replace("{w}", str(workdir)))
    for verb in ("check-config", "run"):
        done = _cli(verb, "--config", str(path))
        assert done.returncode == 2, (verb, done.stdout, done.stderr)
        assert message.replace("{w}", str(workdir)) in done.stderr, (verb, done.stderr)
        assert "{w}" not in body or str(workdir) in done.stderr  # the file is named
        assert "Traceback" not in done.stderr


def test_a_tcp_endpoint_port_out_of_range_is_refused():
    with pytest.raises(ConfigError, match=r"broker.endpoints: 'tcp://h:0': the port"):
        load(None, {"broker.endpoints": ["tcp://h:0"]})


@pytest.mark.skipif(os.getuid() != 0, reason="needs a second user (setpriv as daemon)")
def test_unreadable_files_and_unwritable_socket_dirs_are_refused_for_the_user(workdir):
    daemon = pwd.getpwnam("daemon")
    secret = workdir / "password"
    secret.write_text("pw\n")
    secret.chmod(0o600)  # root's
    locked = workdir / "locked"
    locked.mkdir(mode=0o755)
    path = workdir / "broker.toml"
    path.write_text(f'[broker]\nendpoints = ["unix://{locked}/run/b.stream"]\n'
                    f'[cluster]\nusername = "u"\npassword_file = "{secret}"\n')
    path.chmod(0o644)
    done = _cli("check-config", "--config", str(path), user=daemon)
    assert done.returncode == 2
    assert f"cluster.password_file: {secret} is not readable by this user" in done.stderr
    assert f"broker.endpoints: cannot write in {locked} (to create {locked}/run)" in done.stderr
    assert "broker.admin_endpoint" in done.stderr  # admin.sock beside it: the same directory


def test_environment_overrides_are_typed_by_the_table(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text('[limits]\nrequest_timeout = 9\n[cluster]\nnodes = ["a:1"]\n')
    env = {f"{ENV_PREFIX}LIMITS__REQUEST_TIMEOUT": "5",
           f"{ENV_PREFIX}CLUSTER__NODES": "b:2, c:3",
           f"{ENV_PREFIX}LIMITS__COALESCE_READS": "yes",
           f"{ENV_PREFIX}BROKER__SOCKET_MODE": "0o640",
           f"{ENV_PREFIX}BROKER__ALLOW_UIDS": "[1000, 1001]",
           "IGNITE_BROKER": "ipc:///not/a/setting.sock"}  # the stubs' variable: not ours
    cfg = load(str(path), {"cluster.nodes": ["d:4"]}, environ=env)
    assert cfg.limits_request_timeout == 5.0  # environment over the file
    assert cfg.cluster_nodes == ["d:4"]  # the command line over the environment
    assert load(str(path), environ=env).cluster_nodes == ["b:2", "c:3"]
    assert cfg.limits_coalesce_reads is True and cfg.broker_socket_mode == 0o640
    assert cfg.broker_allow_uids == [1000, 1001]


@pytest.mark.parametrize("var, value, message", [
    ("LIMITS__REQUEST_TIMEOUT", "soon", "must be a number"),
    ("LIMITS__MAX_WORKERS", "1.5", "must be an integer"),
    ("LIMITS__COALESCE_READS", "maybe", "must be true or false"),
    ("LIMITS__NO_SUCH", "1", "unknown setting 'limits.no_such'"),
    ("CLUSTER__PASSWORD", "", None),  # an empty secret is fine
    ("LIMITS__REQUEST_TIMEOUT", "-1", "limits.request_timeout must be more than 0"),
])
def test_bad_environment_overrides_name_the_variable(var, value, message):
    env = {ENV_PREFIX + var: value}
    if message is None:
        assert env_overrides(env) == {"cluster.password": ""}
        return
    with pytest.raises(ConfigError, match=message):
        load(None, environ=env)


def test_a_bad_environment_value_is_shown_with_its_variable():
    with pytest.raises(ConfigError) as err:
        env_overrides({f"{ENV_PREFIX}LIMITS__MAX_WORKERS": "lots"})
    assert str(err.value) == (f"environment variable {ENV_PREFIX}LIMITS__MAX_WORKERS = 'lots': "
                              "limits.max_workers must be an integer")


def test_cli_options_env_and_help(workdir):
    config = _config(workdir, "")
    done = _cli("check-config", "--config", config, "--log-level", "debug",
                env={f"{ENV_PREFIX}LIMITS__REQUEST_TIMEOUT": "5"})
    assert done.returncode == 0, done.stderr
    assert '"log.level": "debug"' in done.stdout and '"limits.request_timeout": 5.0' in done.stdout
    run_help = _cli("run", "--help").stdout
    for transport in ("unix://", "ipc://", "tcp://"):
        assert transport in run_help
    assert "--log-level" in run_help
    listed = _cli("settings").stdout
    assert all(f"env: {ENV_PREFIX}{s.name.upper().replace('.', '__')}" in listed
               for s in SETTINGS)
    admin_help = _cli("admin", "--help").stdout
    for verb in ("status", "show", "pause", "resume", "reload", "drain", "kill-client"):
        assert verb in admin_help
