"""The settings table, TOML loading, overrides and secret masking."""

import pytest

from broker.config import SETTINGS, load
from broker.errors import ConfigError


def test_defaults_load_without_a_file(monkeypatch):
    monkeypatch.delenv("IGNITE_BROKER", raising=False)
    cfg = load(None)
    assert cfg.cluster_nodes == ["127.0.0.1:10800"]
    assert cfg.broker_endpoints[0].startswith("ipc://")
    assert cfg.broker_endpoints[0].endswith("/broker.sock")
    assert cfg.broker_endpoints[1].startswith("unix://")
    assert cfg.broker_endpoints[1].endswith("/broker.stream")
    assert cfg.cluster_connections_per_node == 1


def test_file_then_overrides(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text('[cluster]\nnodes = ["a:1", "b:2"]\nconnect_timeout = 3\n'
                    '[broker]\nendpoints = ["ipc:///tmp/x.sock"]\n')
    cfg = load(str(path), {"cluster.nodes": ["c:3"]})
    assert cfg.cluster_nodes == ["c:3"]
    assert cfg.cluster_connect_timeout == 3.0
    assert cfg.broker_endpoints == ["ipc:///tmp/x.sock"]


@pytest.mark.parametrize("body, message", [
    ('[cluster]\nnodes = ["nohost"]\n', "HOST:PORT"),
    ('[cluster]\nbogus = 1\n', "unknown setting"),
    ('[cluster]\nconnections_per_node = "two"\n', "must be int"),
    ('[broker]\nendpoints = ["http://x"]\n', "ipc://, tcp:// or unix://"),
    ('[broker]\nevent_loop = "trio"\n', "auto, uvloop or asyncio"),
    ('nodes = 1\n', "must be a [section]"),
    ('[cluster\n', "not valid TOML"),
])
def test_bad_files_are_refused_clearly(tmp_path, body, message):
    path = tmp_path / "b.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load(str(path))


def test_secrets_are_masked(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text('[cluster]\nusername = "ignite"\npassword = "s3cret"\n'
                    '[tls]\nkey_password = "k3y"\n')
    view = load(str(path)).public_view()
    assert view["cluster.password"] == "***"
    assert view["tls.key_password"] == "***"
    assert "s3cret" not in repr(view) and "k3y" not in repr(view)
    assert view["cluster.username"] == "ignite"


def test_password_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    path = tmp_path / "b.toml"
    path.write_text(f'[cluster]\nusername = "u"\npassword_file = "{secret}"\n')
    assert load(str(path)).node_password() == "from-file"


def test_every_setting_has_type_default_and_help():
    for s in SETTINGS:
        assert s.help and isinstance(s.reloadable, bool)
        assert s.default is None or isinstance(s.default, s.type)


def test_every_reloadable_setting_has_an_applier():
    """A SIGHUP looks up each reloadable setting's applier: one missing is a KeyError in the
    running broker, one left over applies a setting that is not reloadable."""
    from broker.lifecycle import _APPLY, SETTINGS_RELOADABLE

    assert set(_APPLY) == set(SETTINGS_RELOADABLE)
    assert all(s.applied for s in SETTINGS if s.reloadable)
