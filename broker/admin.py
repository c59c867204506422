"""The operator's window into a running broker: a local ZeroMQ REP socket answering ``show``
commands (table-driven, like PgBouncer's SHOW) with JSON.  Secrets never appear here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from . import __version__, log
from .sockets import Listeners

if TYPE_CHECKING:
    from .lifecycle import Broker

_log = log.get("admin")


def _show_version(broker: Broker) -> Any:
    return {"broker_version": __version__, "pid": os.getpid()}


def _show_nodes(broker: Broker) -> Any:
    pool = broker.pool
    assert pool is not None
    ready: dict[tuple[str, int], list[Any]] = {}
    for c in pool.ready:
        ready.setdefault((c.host, c.port), []).append(c)
    rows = []
    for host, port in pool.addresses:
        conns = ready.get((host, port), [])
        rows.append({
            "address": f"{host}:{port}", "state": "ready" if conns else "down",
            "node_id": str(conns[0].node_id) if conns else None,
            "connections": len(conns),
            "in_flight": sum(c.in_flight for c in conns),
            "queued": sum(c.queued for c in conns),
            "bytes_in_flight": sum(c.bytes_in_flight for c in conns),
        })
    return rows


def _show_clients(broker: Broker) -> Any:
    assert broker.workers is not None
    return [{"worker": w.identity.hex(), "session": w.session.hex(), "in_flight": w.in_flight,
             "transactions": len(w.transactions), "cursors": len(w.cursors)}
            for w in broker.workers]


def _show_topology(broker: Broker) -> Any:
    assert broker.pool is not None
    topology = broker.pool.topology
    mapping = topology.mapping
    return {"map_version": list(mapping.version) if mapping else None,
            "latest_version": list(topology.latest) if topology.latest else None,
            "caches": len(mapping.caches) if mapping else 0, "refreshes": topology.refreshes}


def _show_stats(broker: Broker) -> Any:
    assert broker.frontend is not None and broker.dispatcher is not None
    assert broker.janitor is not None
    return {
        "requests": broker.frontend.requests, "rejected": broker.frontend.requests_rejected,
        "replies_dropped": broker.frontend.replies_dropped,
        "in_flight": broker.dispatcher.in_flight, "parked": broker.dispatcher.parked,
        "coalesced_reads": broker.dispatcher.coalesced,
        "internal_errors": broker.dispatcher.internal_errors + broker.frontend.internal_errors,
        "held_request_bytes": broker.frontend.budget.held,
        "connections_refused": broker.frontend.connections_refused,
        "peers_refused": {transport: refusals.count for transport, refusals
                          in broker.frontend.access.refusals.items()},
        "stalled_connections_closed": broker.frontend.stalled_closed,
        "node_connections_lost": broker.pool.connections_lost if broker.pool else 0,
        "workers": len(broker.workers or ()),
        "released_transactions": broker.janitor.released_transactions,
        "released_cursors": broker.janitor.released_cursors,
        "uptime_s": round(time.monotonic() - broker.started_at, 1),
    }


def _show_config(broker: Broker) -> Any:
    return broker.cfg.public_view()


SHOW: dict[str, Callable[[Broker], Any]] = {
    "version": _show_version,
    "nodes": _show_nodes,
    "clients": _show_clients,
    "topology": _show_topology,
    "stats": _show_stats,
    "config": _show_config,
}


def answer(broker: Broker, command: str) -> dict[str, Any]:
    words = command.split()
    if len(words) == 2 and words[0] == "show" and words[1] in SHOW:
        return {"ok": True, "result": SHOW[words[1]](broker)}
    return {"ok": False, "error": f"unknown command {command!r}; try: "
            + ", ".join(f"show {name}" for name in SHOW)}


class AdminServer:
    """REP socket on ``endpoint``; one command per message, one JSON answer."""

    def __init__(self, context: zmq.Context, endpoint: str, broker: Broker) -> None:
        self.endpoint = endpoint
        self._broker = broker
        self._sock = context.socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: Listeners | None = None

    def start(self, listeners: Listeners | None = None) -> None:
        """Bind; an ipc:// socket file through ``listeners`` (which own it from then on, so
        that it is handed over in an upgrade), mode 0600: the broker's user only."""
        self._listeners = listeners
        if listeners is not None and self.endpoint.startswith("ipc://"):
            listeners.bind_zmq(self._sock, self.endpoint, 0o600)
        else:
            self._sock.bind(self.endpoint)
            if self.endpoint.startswith("ipc://"):
                os.chmod(self.endpoint[len("ipc://"):], 0o600)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.getsockopt(zmq.FD), self._on_readable)
        self._loop.call_soon(self._on_readable)
        _log.info("admin_listening", endpoint=self.endpoint)

    def _on_readable(self) -> None:
        while self._sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            command = self._sock.recv().decode("utf-8", "replace")
            try:
                reply = answer(self._broker, command)
            except Exception as exc:  # never let an admin query hurt the broker
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self._sock.send(json.dumps(reply, default=str).encode())

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._sock.getsockopt(zmq.FD))
        self._sock.close(linger=0)
        if self._listeners is None and self.endpoint.startswith("ipc://"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.endpoint[len("ipc://"):])


def query(endpoint: str, command: str, timeout: float = 5.0) -> dict[str, Any]:
    """Ask a running broker (used by ``ignite-broker admin`` and tests)."""
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(command.encode())
        if not sock.poll(timeout * 1000):
            raise TimeoutError(f"no answer from the broker's admin socket {endpoint}")
        return json.loads(sock.recv())
    finally:
        sock.close()
