"""The broker on either event loop (uvloop, the default, or asyncio's own): the same answers on
both transports."""

from __future__ import annotations

import uuid

import pytest

from broker.cli import loop_factory
from broker.devcluster.brokerproc import running_broker
from broker.errors import ConfigError
from libclient import Client


def test_loop_factory_choices(monkeypatch):
    import uvloop

    assert loop_factory("asyncio") is None
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("auto") is uvloop.new_event_loop
    monkeypatch.setitem(__import__("sys").modules, "uvloop", None)  # as if not installed
    assert loop_factory("auto") is None
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        loop_factory("uvloop")


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_broker_on_each_loop_serves_both_transports(ignite_node, tmp_path, loop):
    cache_name = f"loop-{loop}-{uuid.uuid4().hex[:6]}"
    with running_broker(ignite_node.addresses, tmp_path,
                        settings={"broker.event_loop": loop}) as broker:
        assert f"event_loop={loop}" in broker.log()
        for endpoint in (broker.stream_endpoint, broker.endpoint):
            with Client(broker=endpoint) as client:
                client.connect()
                cache = client.get_or_create_cache(cache_name)
                cache.put_all({i: f"v{i}" for i in range(50)})
                assert cache.get_all(list(range(50))) == {i: f"v{i}" for i in range(50)}
                assert cache.get(7) == "v7"
                cache.destroy()
