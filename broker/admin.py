"""The operator's window into a running broker: a local ZeroMQ REP socket (its own socket file,
mode 0600 by default) answering one command per message with JSON — ``status``, ``show``
tables (like PgBouncer's SHOW), ``pause``/``resume``, ``reload``, ``drain``, ``kill-client`` —
and the client side, ``query``.  Secrets never appear here."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from . import __version__, log, native
from .errors import BrokerError, ConfigError
from .memory import MemoryProbe
from .sockets import Listeners

if TYPE_CHECKING:
    from .lifecycle import Broker
    from .workers import Worker

_log = log.get("admin")


class AdminError(BrokerError):
    """The admin socket is not there or does not answer (no broker running)."""


# -- show -------------------------------------------------------------------------------------


def _show_version(broker: Broker) -> Any:
    return {"broker_version": __version__, "pid": os.getpid(),
            "native": native.state().describe()}


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


def _process_of(pid: int | None) -> tuple[str | None, int | None]:
    """(process name, uid) of a local pid from /proc, or Nones."""
    if pid is None:
        return None, None
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            name = fh.read().strip()
        return name, os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None, None


def _zmq_transport(broker: Broker) -> str:
    kinds = {e.split("://", 1)[0] for e in broker.cfg.broker_endpoints} - {"unix"}
    return kinds.pop() if len(kinds) == 1 else "zmq"


def _client_row(broker: Broker, worker: Worker, streams: dict[bytes, Any]) -> dict[str, Any]:
    stream = streams.get(worker.identity)
    if stream is not None:  # the kernel's word (SO_PEERCRED)
        transport = "unix"
        pid, uid = (stream.peer[0], stream.peer[1]) if stream.peer else (None, None)
        name, _ = _process_of(pid)
    else:  # the stub's word; /proc only for local peers
        transport = _zmq_transport(broker)
        pid, uid, name = worker.pid, None, None
        if transport == "ipc":
            name, uid = _process_of(pid)
    return {
        "id": worker.identity.hex(), "pid": pid, "uid": uid, "process": name,
        "label": worker.label, "transport": transport,
        "connected_since": time.strftime("%Y-%m-%dT%H:%M:%S",
                                         time.localtime(worker.connected_at)),
        "requests": worker.requests, "errors": worker.errors, "in_flight": worker.in_flight,
        "transactions": len(worker.transactions), "cursors": len(worker.cursors),
    }


def _show_clients(broker: Broker) -> Any:
    assert broker.workers is not None
    streams = broker.frontend.streams() if broker.frontend is not None else {}
    return [_client_row(broker, w, streams) for w in broker.workers]


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
        "paused": broker.dispatcher.paused,
        "coalesced_reads": broker.dispatcher.coalesced,
        **broker.dispatcher.batching_stats(),
        "internal_errors": broker.dispatcher.internal_errors + broker.frontend.internal_errors,
        "held_request_bytes": broker.frontend.budget.held,
        "connections_refused": broker.frontend.connections_refused,
        "peers_refused": {transport: refusals.count for transport, refusals
                          in broker.frontend.access.refusals.items()},
        "stalled_connections_closed": broker.frontend.stalled_closed,
        "node_connections_lost": broker.pool.connections_lost if broker.pool else 0,
        "workers": len(broker.workers or ()),
        "worker_errors": sum(w.errors for w in broker.workers or ()),
        "released_transactions": broker.janitor.released_transactions,
        "released_cursors": broker.janitor.released_cursors,
        "cache_changes": _cache_changes(broker),
        "uptime_s": round(time.monotonic() - broker.started_at, 1),
    }


def _cache_changes(broker: Broker) -> dict[str, Any]:
    """Cache starts and stops (broker/cachechanges.py): the seconds they held the cluster,
    how often the next one waited for their share of time, those paced per worker, refused."""
    assert broker.dispatcher is not None
    changes = broker.dispatcher.cache_lifecycle
    return {"held_s": round(changes.serial.held_seconds, 2),
            "waited_for_share": changes.serial.waits, "paced": changes.paced,
            "refused": changes.refused}


def _show_config(broker: Broker) -> Any:
    return broker.cfg.public_view()


def _show_registry(broker: Broker) -> Any:
    assert broker.dispatcher is not None
    types = broker.dispatcher.types
    return {"types": len(types.registry), "registered": types.registered,
            "fetched": types.fetched}


SHOW: dict[str, Callable[[Broker], Any]] = {
    "version": _show_version,
    "nodes": _show_nodes,
    "clients": _show_clients,
    "topology": _show_topology,
    "stats": _show_stats,
    "config": _show_config,
    "registry": _show_registry,
}


# -- status: one screen -----------------------------------------------------------------------


class Rates:
    """Requests per second and the p99 of request latency over the last sample window, from
    the counters the broker keeps anyway: sampled when ``status`` is asked."""

    def __init__(self) -> None:
        self._last: tuple[float, int, int] | None = None  # monotonic, requests, errors

    def sample(self, requests: int, errors: int) -> dict[str, float | None]:
        now = time.monotonic()
        last, self._last = self._last, (now, requests, errors)
        if last is None or now <= last[0]:
            return {"requests_per_s": None, "errors_per_s": None, "window_s": None}
        span = now - last[0]
        return {"requests_per_s": round((requests - last[1]) / span, 1),
                "errors_per_s": round((errors - last[2]) / span, 2), "window_s": round(span, 1)}


def _status(broker: Broker) -> Any:
    stats = _show_stats(broker)
    nodes = _show_nodes(broker)
    path = broker._config_path
    try:
        age = round(time.time() - os.stat(path).st_mtime) if path else None
    except OSError:
        age = None
    rates = broker.admin.rates.sample(stats["requests"], stats["worker_errors"]) \
        if broker.admin is not None else {}
    return {
        "version": __version__, "pid": os.getpid(), "uptime_s": stats["uptime_s"],
        "paused": stats["paused"],
        "config_file": path, "config_age_s": age,
        "nodes_ready": sum(1 for n in nodes if n["state"] == "ready"), "nodes": nodes,
        "workers": stats["workers"], "in_flight": stats["in_flight"],
        "parked": stats["parked"], "requests": stats["requests"],
        "errors": stats["worker_errors"], "internal_errors": stats["internal_errors"],
        **rates, "p99_ms": _p99_ms(broker),
    }


def _p99_ms(broker: Broker) -> float | None:
    """The p99 of the broker's answer times over its last requests (dispatch.Latencies)."""
    assert broker.dispatcher is not None
    p99 = broker.dispatcher.latencies.quantile(0.99)
    return round(p99 * 1000, 2) if p99 is not None else None


# -- actions ----------------------------------------------------------------------------------


def _pause(broker: Broker, args: list[str]) -> Any:
    assert broker.dispatcher is not None
    broker.dispatcher.pause()
    _log.warning("paused", by="admin")
    return {"paused": True, "parked": broker.dispatcher.parked}


def _resume(broker: Broker, args: list[str]) -> Any:
    assert broker.dispatcher is not None
    held = broker.dispatcher.parked
    broker.dispatcher.resume()
    _log.warning("resumed", by="admin", released=held)
    return {"paused": False, "released": held - broker.dispatcher.parked}


def _reload(broker: Broker, args: list[str]) -> Any:
    report = broker.reload()
    if not report.get("ok"):
        raise ConfigError(f"reload failed, nothing changed: {report.get('error')}")
    return {k: v for k, v in report.items() if k != "ok"}


def _drain(broker: Broker, args: list[str]) -> Any:
    """Like SIGTERM (the same path): stop taking new work, finish in-flight requests and open
    transactions, exit."""
    asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
    return {"draining": True, "in_flight": broker.dispatcher.in_flight
            if broker.dispatcher else 0}


def _kill_client(broker: Broker, args: list[str]) -> Any:
    """Disconnect a worker (unix://) or forget it (ZeroMQ: its next request is a new worker)
    and release its transactions and cursors, by id (``show clients``) or by pid."""
    assert broker.workers is not None and broker.janitor is not None
    if len(args) == 2 and args[0] == "--pid" and args[1].isdigit():
        rows = _show_clients(broker)
        ids = [bytes.fromhex(r["id"]) for r in rows if r["pid"] == int(args[1])]
    elif len(args) == 1:
        try:
            ids = [bytes.fromhex(args[0])]
        except ValueError:
            raise ConfigError(f"kill-client: {args[0]!r} is not a client id "
                              "(`show clients` lists them)") from None
    else:
        raise ConfigError("usage: kill-client ID | kill-client --pid PID")
    streams = broker.frontend.streams() if broker.frontend is not None else {}
    killed = []
    for identity in ids:
        worker = broker.workers.forget(identity)
        if worker is None:
            continue
        broker.janitor.release(worker, "killed by admin")
        stream = streams.get(identity)
        if stream is not None:
            stream.close("killed by admin")
        killed.append(identity.hex())
    if not killed:
        raise ConfigError(f"kill-client {' '.join(args)}: no such client")
    _log.warning("clients_killed", by="admin", clients=killed)
    return {"killed": killed}


def _memory(broker: Broker, args: list[str]) -> Any:
    """What the broker's memory holds (broker/memory.py): for finding retention."""
    assert broker.admin is not None
    return broker.admin.memory.command(args)


def _log_level(broker: Broker, args: list[str]) -> Any:
    """The level of every log line from now until the next reload or restart (which apply
    ``log.level`` again)."""
    if len(args) != 1 or args[0] not in log.LEVELS:
        raise ConfigError("usage: log-level " + "|".join(log.LEVELS))
    log.set_level(args[0])
    _log.warning("log_level_changed", by="admin", to=args[0])
    return {"level": args[0], "until": "the next reload or restart (log.level)"}


ACTIONS: dict[str, Callable[[Broker, list[str]], Any]] = {
    "pause": _pause,
    "resume": _resume,
    "reload": _reload,
    "drain": _drain,
    "kill-client": _kill_client,
    "log-level": _log_level,
    "memory": _memory,
}

USAGE = ("status, show " + "|".join(SHOW) + ", " + ", ".join(ACTIONS)
         + " (kill-client ID | --pid PID; memory [trace N|untrace|trim])")


def answer(broker: Broker, command: str) -> dict[str, Any]:
    words = command.split()
    try:
        if words == ["status"]:
            return {"ok": True, "result": _status(broker)}
        if len(words) == 2 and words[0] == "show" and words[1] in SHOW:
            return {"ok": True, "result": SHOW[words[1]](broker)}
        if words and words[0] in ACTIONS:
            return {"ok": True, "result": ACTIONS[words[0]](broker, words[1:])}
    except BrokerError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": False, "error": f"unknown command {command[:100]!r}; try: {USAGE}"}


# -- the socket ---------------------------------------------------------------------------------


class AdminServer:
    """REP socket on ``endpoint``; one command per message, one JSON answer."""

    def __init__(self, context: zmq.Context[Any], endpoint: str, broker: Broker, *,
                 mode: int = 0o600, group: str = "") -> None:
        self.endpoint = endpoint
        self._broker = broker
        self._mode = mode
        self._group = group
        self.rates = Rates()
        self.memory = MemoryProbe()
        self._sock = context.socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, 4096)  # a command is a few words
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: Listeners | None = None

    def start(self, listeners: Listeners | None = None) -> None:
        """Bind, with the file mode and group given (0600 by default: the broker's user only);
        an ipc:// socket file through ``listeners``, which own it from then on, so that it is
        handed over in an upgrade."""
        self._listeners = listeners
        path = self.endpoint[len("ipc://"):] if self.endpoint.startswith("ipc://") else None
        file_path = path if path is not None and not path.startswith("@") else None
        if file_path is not None:
            os.makedirs(os.path.dirname(file_path) or ".", mode=0o750, exist_ok=True)
        if listeners is not None and path is not None:
            listeners.bind_zmq(self._sock, self.endpoint, self._mode)
        else:
            self._sock.bind(self.endpoint)
        if file_path is not None:
            gid = _group_id(self._group) if self._group else -1
            if gid != -1:
                os.chown(file_path, -1, gid)
            os.chmod(file_path, self._mode)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.getsockopt(zmq.FD), self._on_readable)
        self._loop.call_soon(self._on_readable)
        _log.info("admin_listening", endpoint=self.endpoint, mode=f"{self._mode:04o}")

    def _on_readable(self) -> None:
        while self._sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            command = self._sock.recv().decode("utf-8", "replace")
            try:
                reply = answer(self._broker, command)
            except Exception as exc:  # never let an admin query hurt the broker
                _log.exception("admin_command_failed", command=command[:100])
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self._sock.send(json.dumps(reply, default=str).encode())

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._sock.getsockopt(zmq.FD))
        self._sock.close(linger=0)
        if self._listeners is None and self.endpoint.startswith("ipc://"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.endpoint[len("ipc://"):])


def _group_id(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"broker.admin_group: no group named {group!r}") from None


# -- the client side ----------------------------------------------------------------------------


def query(endpoint: str, command: str, timeout: float = 10.0) -> dict[str, Any]:
    """Ask a running broker (``ignite-broker admin`` and tests); AdminError when nobody
    answers: no socket file, no permission, or a broker that does not reply."""
    path = endpoint[len("ipc://"):] if endpoint.startswith("ipc://") else None
    if path is not None and not path.startswith("@"):
        if not os.path.exists(path):
            raise AdminError(f"no broker running: no admin socket at {path}")
        if not os.access(path, os.R_OK | os.W_OK):
            raise AdminError(f"no permission on the admin socket {path} (mode 0600 by default: "
                             "run as the broker's user, or see broker.admin_group)")
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(command.encode())
        if not sock.poll(int(timeout * 1000)):
            raise AdminError(f"no answer from the broker's admin socket {endpoint} within "
                             f"{timeout:g}s (is the broker running?)")
        answer: dict[str, Any] = json.loads(sock.recv())
        return answer
    finally:
        sock.close()
