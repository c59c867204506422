"""The shipped systemd units: `systemd-analyze verify` finds nothing to say, the service's
sandbox scores at most 1.5 in `systemd-analyze security`, and the socket units match the
broker's default endpoints by path and FileDescriptorName."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.ipc import default_endpoint
from protocol.ipcstream import default_stream_endpoint

UNITS = Path(__file__).resolve().parents[2] / "systemd"
NAMES = ["ignite-broker.service", "ignite-broker.socket", "ignite-broker-ipc.socket"]

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is not installed (./dev test installs it)")


@pytest.fixture
def units(tmp_path: Path) -> Path:
    """The units, with ExecStart= pointing at this venv's real ignite-broker."""
    executable = Path(sys.executable).with_name("ignite-broker")
    assert executable.exists()
    for name in NAMES:
        text = (UNITS / name).read_text()
        text = text.replace("ExecStart=/usr/bin/ignite-broker", f"ExecStart={executable}")
        (tmp_path / name).write_text(text)
    return tmp_path


def _analyze(units: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args], cwd=units, capture_output=True, text=True,
                          timeout=120, check=False)


def test_verify_prints_nothing(units: Path) -> None:
    result = _analyze(units, "verify", *NAMES)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_security_exposure_at_most_1_5(units: Path) -> None:
    result = _analyze(units, "security", "--offline=true", "ignite-broker.service")
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for ignite-broker\.service: (\d+\.\d+)",
                      result.stdout)
    assert match, result.stdout
    assert float(match.group(1)) <= 1.5, result.stdout


def _section(name: str, section: str) -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return dict(parser[section])


def test_socket_units_match_the_default_endpoints() -> None:
    under_systemd = {"RUNTIME_DIRECTORY": "/run/ignite-broker"}  # from RuntimeDirectory=
    endpoints = [default_endpoint(under_systemd, 999), default_stream_endpoint(under_systemd, 999)]
    assert _section("ignite-broker.service", "Service")["RuntimeDirectory"] == "ignite-broker"
    for unit, scheme in (("ignite-broker.socket", "unix"), ("ignite-broker-ipc.socket", "ipc")):
        socket_section = _section(unit, "Socket")
        assert socket_section["FileDescriptorName"] == scheme
        assert f"{scheme}://{socket_section['ListenStream']}" in endpoints
        assert socket_section["Service"] == "ignite-broker.service"
    service = _section("ignite-broker.service", "Service")
    assert service["Type"] == "notify"
    assert int(service["LimitNOFILE"]) >= 16384
    assert service["WatchdogSec"]
