"""The compiled hot path against a real node: the broker the suite starts runs the build
./dev made for these sources (when this machine has a C compiler), and both it and the pure-
Python fallback (IGNITE_BROKER_NATIVE=0) serve the same requests with the same answers."""

from __future__ import annotations

import shutil
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import native
from broker.devcluster.brokerproc import BrokerProcess, running_broker
from libclient import Client

pytestmark = pytest.mark.integration

#: What mypyc needs to build: a C compiler and this interpreter's headers (Debian's python3.11
#: comes without them unless python3.11-dev is installed; pyenv's and python.org's have them).
HAS_COMPILER = (any(shutil.which(cc) for cc in ("cc", "gcc", "clang"))
                and Path(sysconfig.get_paths()["include"], "Python.h").is_file())


@pytest.fixture(scope="module", params=["compiled", "pure"])
def broker(request, ignite_node, tmp_path_factory) -> Iterator[BrokerProcess]:
    env = {native.SWITCH: "0"} if request.param == "pure" else None
    if request.param == "compiled" and not native.is_built():
        if HAS_COMPILER:
            pytest.fail(f"no compiled hot path for these sources in {native.native_dir()}: "
                        "./dev builds it (its log: .venv/native-build.log)")
        pytest.skip("no C compiler or Python headers here: the broker runs pure Python")
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("native"),
                        env=env) as proc:
        yield proc


def test_the_broker_says_which_hot_path_it_runs(broker: BrokerProcess) -> None:
    state = broker.admin("show version")["native"]
    if broker.env:
        assert state == {"on": False, "reason": f"switched off ({native.SWITCH}=0)",
                         "directory": None, "compiled_modules": 0}
    else:
        assert state["on"] is True
        assert state["directory"] == str(native.build_path())
        assert state["compiled_modules"] == len(native.HOT_MODULES)


@pytest.mark.parametrize("transport", ["ipc", "unix"])
def test_both_hot_paths_answer_alike(broker: BrokerProcess, transport: str) -> None:
    endpoint = broker.endpoint if transport == "ipc" else broker.stream_endpoint
    with Client(broker=endpoint) as client, client.connect():
        cache = client.get_or_create_cache(f"native-{transport}")
        cache.put_all({k: f"v{k}" for k in range(50)})
        values = {1: 2.5, 2: b"\x00bytes", 3: True, 4: 2**40, 5: "\u00e9t\u00e9"}
        cache.put_all(values)
        assert cache.get_all(list(range(6, 10))) == {k: f"v{k}" for k in range(6, 10)}
        assert {k: cache.get(k) for k in values} == values
        assert cache.get(999) is None
        assert cache.get_size() == 50
        cache.destroy()
