"""The worker-host distribution ignite-broker-client (packaging/client): its wheel, built from
this checkout and installed into a fresh venv with only its dependencies (from PyPI), holds
libclient and protocol but not the daemon or its dependencies, and works against a real
broker over unix:// and ZeroMQ ipc://."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest

import protocol
from broker.devcluster.brokerproc import running_broker
from libclient import Client

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PIP_TIMEOUT = 600.0  # a bound for building and installing, not a speed claim
KEYS = 100

INSPECT = """
import importlib, importlib.metadata, importlib.util, json, pkgutil, re
import libclient, protocol
modules = [m.name for m in pkgutil.walk_packages(libclient.__path__, "libclient.")]
for name in modules:
    importlib.import_module(name)
print(json.dumps({
    "libclient_file": libclient.__file__,
    "modules": len(modules),
    "distributions": sorted(re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower()
                            for d in importlib.metadata.distributions()),
    "absent": {name: importlib.util.find_spec(name) is None
               for name in ("broker", "uvloop", "structlog", "prometheus_client", "pyignite")},
}))
"""

ROUND_TRIP = """
import asyncio, json, os, sys
from libclient import AioClient, Client
cache_name, run, keys = sys.argv[1], sys.argv[2], int(sys.argv[3])
values = {f"{run}-{i}": f"value {i} {run} \\u00e9" for i in range(keys)}
client = Client()
client.connect()
cache = client.get_or_create_cache(cache_name)
for key, value in values.items():
    cache.put(key, value)
wrong = [key for key, value in values.items() if cache.get(key) != value]

async def aio_read():
    aio = AioClient()
    async with aio.connect():
        return await (await aio.get_cache(cache_name)).get_all(list(values))

print(json.dumps({"wrong": wrong, "aio_equal": asyncio.run(aio_read()) == values}))
"""


def run(argv: list, **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=PIP_TIMEOUT, **kwargs)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the parts packaging/client names (the checkout stays
    clean: setuptools writes its build and egg-info directories beside the sources)."""
    src = tmp_path_factory.mktemp("client-src")
    junk = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    for part in ("libclient", "protocol", "packaging/client"):
        shutil.copytree(REPO / part, src / part, ignore=junk)
    out = tmp_path_factory.mktemp("client-wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", out, src / "packaging/client"])
    [built] = out.glob("ignite_broker_client-*.whl")
    return built


@pytest.fixture(scope="module")
def venv_python(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel and its dependencies, nothing of this checkout."""
    venv = tmp_path_factory.mktemp("client-venv")
    run([sys.executable, "-m", "venv", "--clear", venv])
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel])
    return python


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory):
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("dist")) as proc:
        yield proc


def test_wheel_holds_the_stub_only(wheel):
    version = protocol.__version__
    assert wheel.name.startswith(f"ignite_broker_client-{version}-py3-none-any")
    with zipfile.ZipFile(wheel) as whl:
        tops = {name.split("/")[0] for name in whl.namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"libclient", "protocol"}


def test_fresh_venv_has_no_daemon_parts(venv_python, tmp_path):
    """Every libclient module imports there; the daemon and its dependencies are absent."""
    done = run([venv_python, "-I", "-c", INSPECT], cwd=tmp_path)
    found = json.loads(done.stdout)
    assert Path(found["libclient_file"]).is_relative_to(venv_python.parent.parent)
    assert found["modules"] > 10
    assert all(found["absent"].values()), found["absent"]
    extra = set(found["distributions"]) - {"pip", "setuptools"}
    assert extra == {"ignite-broker-client", "pyzmq", "msgpack"}


@pytest.mark.parametrize("transport", ["unix", "ipc"])
def test_fresh_venv_talks_to_a_real_broker(transport, venv_python, broker, tmp_path):
    endpoint = broker.stream_endpoint if transport == "unix" else broker.endpoint
    cache_name, run_id = f"dist-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex[:12]
    done = run([venv_python, "-I", "-c", ROUND_TRIP, cache_name, run_id, KEYS],
               cwd=tmp_path, env={"IGNITE_BROKER": endpoint, "PATH": "/usr/bin:/bin"})
    assert json.loads(done.stdout) == {"wrong": [], "aio_equal": True}
    values = {f"{run_id}-{i}": f"value {i} {run_id} \u00e9" for i in range(KEYS)}
    with Client(broker=endpoint) as direct:
        direct.connect()
        stored = direct.get_cache(cache_name).get_all(list(values))
    assert stored == values
