"""The admin table's answers over a fake cluster (no JVM, no socket): nodes with their
connections and bytes in flight, clients with what they own, the partition map."""

from __future__ import annotations

from types import SimpleNamespace

from broker.admin import answer
from protocol import OpCode
from tests.broker.fakenode import Harness, run


@run
async def test_show_nodes_clients_and_topology_describe_the_running_broker():
    h = await Harness(2).start()
    h.nodes[1].stop()
    await h.until(lambda: len(h.pool.ready) == 1)
    h.nodes[0].hold.add(OpCode.CACHE_GET)
    h.send("cache_get", {"cache": "ops-kv", "key": 1}, worker=b"\x01\x02")
    cfg = SimpleNamespace(broker_endpoints=["ipc:///x/broker.sock", "unix:///x/broker.stream"])
    broker = SimpleNamespace(pool=h.pool, workers=h.workers, frontend=None, cfg=cfg)
    nodes = answer(broker, "show nodes")["result"]  # type: ignore[arg-type]
    assert [(n["address"], n["state"], n["connections"]) for n in nodes] == [
        ("127.0.0.1:10800", "ready", 1), ("127.0.0.1:10801", "down", 0)]
    assert nodes[0]["in_flight"] == 1 and nodes[0]["node_id"] == str(h.nodes[0].node_id)
    clients = answer(broker, "show clients")["result"]  # type: ignore[arg-type]
    [client] = clients
    connected = client.pop("connected_since")
    assert client == {"id": "0102", "pid": None, "uid": None, "process": None, "label": None,
                      "transport": "ipc", "requests": 1, "errors": 0, "in_flight": 1,
                      "transactions": 0, "cursors": 0}
    assert connected[:2] == "20" and "T" in connected
    await h.until(lambda: h.pool.topology.refreshes == 1)
    topology = answer(broker, "show topology")["result"]  # type: ignore[arg-type]
    assert topology["map_version"] == [13, 0] and topology["caches"] == 10  # the captured map
    assert answer(broker, "show nothing")["ok"] is False  # type: ignore[arg-type]
    await h.close()
