"""Contracts kept in one place are read from it: the version string (protocol.__version__) and
the log levels (broker.log.LEVELS)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

import broker
import libclient
import protocol
from broker import cli, config, log


def test_the_packages_and_the_installed_distribution_share_one_version():
    assert broker.__version__ == libclient.__version__ == protocol.__version__
    assert importlib.metadata.version("ignite-broker") == protocol.__version__


def test_the_command_line_prints_that_version():
    done = subprocess.run([sys.executable, "-m", "broker", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == f"ignite-broker {protocol.__version__}"


def test_the_settings_table_names_the_loggers_levels():
    setting = next(s for s in config.SETTINGS if s.name == "log.level")
    assert setting.help == "debug, info, warning or error"
    assert set(log.LEVELS) == {"debug", "info", "warning", "error"}


@pytest.mark.parametrize("level", sorted(log.LEVELS))
def test_config_and_the_command_line_take_each_level(level):
    assert config.load(overrides={"log.level": level}, environ={}).get("log.level") == level
    assert cli.build_parser().parse_args(["run", "--log-level", level]).log_level == level


def test_config_and_the_command_line_refuse_a_level_the_logger_lacks(capsys):
    with pytest.raises(config.ConfigError, match=r"log\.level must be debug, info, warning or"):
        config.load(overrides={"log.level": "trace"}, environ={})
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--log-level", "trace"])
    assert "invalid choice: 'trace'" in capsys.readouterr().err
