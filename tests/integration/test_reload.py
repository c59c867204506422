"""SIGHUP reloads the config file: a reloadable setting takes effect, a restart-only one is
logged as refused and keeps its value, a broken file changes nothing; the broker keeps serving."""

from __future__ import annotations

import os
import signal
import time

import pytest

from broker.devcluster.brokerproc import render_toml, running_broker
from tests.integration.rawipc import Raw

pytestmark = pytest.mark.integration


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sighup_applies_reloadable_settings_only(ignite_node, tmp_path):
    with running_broker(ignite_node.addresses, tmp_path) as broker:
        settings = dict(broker.settings)
        settings["limits.worker_liveness"] = 7.5  # reloadable
        settings["cluster.connections_per_node"] = 3  # needs a restart
        broker.config_path.write_text(render_toml(settings))
        os.kill(broker.proc.pid, signal.SIGHUP)
        _wait_for(lambda: "reloaded" in broker.log())
        shown = broker.admin("show config")
        assert shown["limits.worker_liveness"] == 7.5
        assert shown["cluster.connections_per_node"] == 1
        assert "refused_need_restart=['cluster.connections_per_node']" in broker.log()

        broker.config_path.write_text("[cluster\nbroken = ")
        os.kill(broker.proc.pid, signal.SIGHUP)
        _wait_for(lambda: "reload_failed" in broker.log())
        assert broker.admin("show config")["limits.worker_liveness"] == 7.5

        raw = Raw(broker.endpoint)
        try:
            assert raw.call("ping") is None  # still serving
        finally:
            raw.close()
