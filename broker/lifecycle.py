"""The daemon's life: start-up in a fixed order, systemd notifications, signals, and drain.

Start-up order (each step needs the ones before it):
  1. config (already loaded by the CLI) and logging
  2. single-instance lock (a second broker must not steal the ipc socket), in a directory
     nobody else can write; access rules: secret-file modes, CURVE keys
  3. TLS context for the nodes (fails early on unreadable certificates)
  4. ZAP handler (before any bind: a CURVE listener without one admits any key), then bind
     the ROUTER endpoints and the unix:// listeners at once (or adopt the sockets systemd or
     the broker this one replaces passed us), and serve: requests wait for a node within
     their deadline (limits.queue_wait); the metrics listener (its own thread)
  5. node pool: connect to the configured nodes; once the first handshake succeeds, or after
     connect_timeout, READY=1 with a STATUS= saying how many are up (broker/notify.py)
SIGHUP: re-read the config file; reloadable settings take effect, others are logged as refused.
SIGUSR2 (``ignite-broker upgrade``): re-execute with the listening sockets, and once the new
process is ready, drain and exit as on SIGTERM (broker/upgrade.py).
SIGTERM/SIGINT: stop taking new work, let in-flight requests and open transactions finish
(bounded), close, exit 0.
A second SIGTERM/SIGINT, or SIGQUIT, exits at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable
from typing import IO, Any

import zmq

from protocol import ConnectionConfig
from protocol.features import Feature
from protocol.ipc import IPC_VERSION

from . import __version__, log, notify, stages, upgrade
from .access import Access, ensure_socket_dir, secret_file_warnings
from .admin import AdminServer
from .bounds import BOUND_SETTINGS
from .budget import MemoryBudget
from .config import SETTINGS, Config, admin_endpoint, load, parse_address
from .dispatch import Dispatcher
from .errors import BrokerError, ConfigError
from .frontend import Frontend
from .handlers import HANDLERS
from .janitor import Janitor, limit_malloc_arenas
from .limits import Limits
from .metrics import Metrics, MetricsServer, watch_broker
from .notify import sd_notify
from .pool import NodePool
from .sockets import Listeners
from .stream import tcp_connector
from .workers import Workers

_log = log.get("lifecycle")

#: Once the started requests are answered: how long no request may have come (each answered
#: NOT_PROCESSED, or dropped after GOING_AWAY) before the sockets close, so that a request on
#: its way when the stub was told is not cut off (its stub would not know its fate).
_QUIET = 0.1
#: Asked of every node: cluster states, node endpoints (topology), heartbeats, all affinity
#: mappings (partition awareness for every cache).
_FEATURES = frozenset({Feature.CLUSTER_STATES, Feature.CLUSTER_GROUP_GET_NODES_ENDPOINTS,
                       Feature.HEARTBEAT, Feature.ALL_AFFINITY_MAPPINGS,
                       Feature.TX_AWARE_QUERIES})


def build_ssl_context(cfg: Config) -> ssl.SSLContext | None:
    if not cfg.tls_enabled:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if cfg.tls_verify:
            if cfg.tls_ca_file:
                ctx.load_verify_locations(cfg.tls_ca_file)
            else:
                ctx.load_default_certs()
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.tls_cert_file:
            ctx.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file or None,
                                password=cfg.tls_key_password or None)
        if cfg.tls_ciphers:
            ctx.set_ciphers(cfg.tls_ciphers)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS material: {exc}") from exc
    return ctx


def protocol_config(cfg: Config) -> ConnectionConfig:
    username = cfg.cluster_username or None
    password = cfg.node_password() if username else None
    return ConnectionConfig(username=username, password=password, features=_FEATURES)


class Broker:
    """One running daemon."""

    def __init__(
        self, cfg: Config, *, config_path: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self._config_path = config_path
        self._overrides = overrides or {}
        self._stop = asyncio.Event()
        self._lock_file: IO[str] | None = None
        self._signals = 0
        self._heartbeat = notify.Heartbeat(self.status)
        self._predecessor: socket.socket | None = None  # set when this broker replaces one
        self._tasks: set[asyncio.Task[Any]] = set()
        self._upgrading = False
        self._requests_seen = (time.monotonic(), 0)
        self.pool: NodePool | None = None
        self.frontend: Frontend | None = None
        self.janitor: Janitor | None = None
        self.dispatcher: Dispatcher | None = None
        self.workers: Workers | None = None
        self.admin: AdminServer | None = None
        self.access: Access | None = None
        self.metrics: Metrics | None = None
        self.started_at = time.monotonic()

    def info(self) -> dict[str, Any]:
        """What a worker learns from 'hello': never a secret."""
        pool = self.pool
        conn = pool.ready[0] if pool and pool.ready else None
        return {
            "protocol_version": list(conn.version) if conn else None,
            "features": sorted(conn.features) if conn else None,
            "broker_version": __version__,
            "ipc_version": IPC_VERSION,
            "pid": os.getpid(),
            "nodes": [f"{h}:{p}" for h, p in self.cfg_addresses()],
            "nodes_ready": len(pool.ready) if pool else 0,
            "worker_liveness_s": self.cfg.limits_worker_liveness,
        }

    def cfg_addresses(self) -> list[tuple[str, int]]:
        return [parse_address(a) for a in self.cfg.cluster_nodes]

    def status(self) -> str:
        """Live figures for STATUS=: nodes up, workers, requests per second since last asked."""
        pool, frontend, workers = self.pool, self.frontend, self.workers
        nodes_up = len({(c.host, c.port) for c in pool.ready}) if pool else 0
        nodes = len(pool.addresses) if pool else 0
        count = frontend.requests if frontend else 0
        now = time.monotonic()
        then, before = self._requests_seen
        self._requests_seen = (now, count)
        rate = (count - before) / (now - then) if now > then else 0.0
        return (f"{nodes_up}/{nodes} nodes up, {len(workers) if workers else 0} workers, "
                f"{rate:.0f} req/s")

    async def run(self) -> int:
        cfg = self.cfg
        stages.install_from_environment()  # bench/stages.py only; nothing when unset
        limit_malloc_arenas()  # before libzmq's threads start
        listeners = Listeners.from_environment()  # LISTEN_FDS from systemd or a predecessor
        self._predecessor = upgrade.predecessor()
        self._take_lock()
        for warning in secret_file_warnings(cfg):
            _log.warning("secret_file_readable_by_others", detail=warning)
        access = self.access = Access.from_config(cfg)
        metrics = self.metrics = Metrics(max_clients=cfg.metrics_max_clients)
        pool = self.pool = self._make_pool(cfg, metrics)
        context: zmq.Context[Any] = zmq.Context()
        frontend = self._make_request_path(cfg, context, access, metrics)
        janitor = self.janitor
        assert janitor is not None
        metrics_server = MetricsServer(cfg.metrics_listen, metrics.registry) \
            if cfg.metrics_listen else None
        try:
            await self._serve(context, access, listeners, metrics_server)
        finally:
            if metrics_server is not None:
                await asyncio.to_thread(metrics_server.close)
            await janitor.stop()
            if self.admin is not None:
                self.admin.close()
            frontend.close()
            access.close()
            await pool.close()
            context.term()
            self._release_lock()
        _log.info("stopped")
        return 0

    def _make_pool(self, cfg: Config, metrics: Metrics) -> NodePool:
        """The node connections (TLS context built here: unreadable certificates fail early)."""
        return NodePool(
            self.cfg_addresses(), protocol_config(cfg),
            connect=tcp_connector(build_ssl_context(cfg)),
            connect_timeout=cfg.cluster_connect_timeout,
            connections_per_node=cfg.cluster_connections_per_node,
            max_connections_per_node=cfg.cluster_max_connections_per_node,
            max_backoff=cfg.cluster_reconnect_max_backoff,
            heartbeat_interval=cfg.cluster_heartbeat_interval,
            node_warmup=cfg.cluster_node_warmup,
            node_byte_budget=cfg.limits_node_bytes_in_flight, metrics=metrics,
        )

    def _make_request_path(self, cfg: Config, context: zmq.Context[Any], access: Access,
                           metrics: Metrics) -> Frontend:
        """Workers, dispatcher, janitor and front end, wired to each other and to metrics."""
        assert self.pool is not None
        pool = self.pool
        workers = self.workers = Workers(max_workers=cfg.limits_max_workers)
        limits = Limits(max_in_flight_per_worker=cfg.limits_max_in_flight_per_worker,
                        max_in_flight_total=cfg.limits_max_in_flight_total,
                        default_timeout=cfg.limits_request_timeout,
                        max_request_timeout=cfg.limits_max_request_timeout,
                        queue_wait=cfg.limits_queue_wait,
                        coalesce_reads=cfg.limits_coalesce_reads,
                        batch_requests=cfg.limits_batch_requests,
                        batch_max_keys=cfg.limits_batch_max_keys,
                        batch_max_bytes=cfg.limits_batch_max_bytes,
                        **{name: cfg.get(f"limits.{name}") for name in BOUND_SETTINGS})
        dispatcher = self.dispatcher = Dispatcher(pool, workers, self.info, limits,
                                                  metrics, handlers=HANDLERS)
        janitor = self.janitor = Janitor(pool, workers, dispatcher,
                                         liveness=cfg.limits_worker_liveness,
                                         heartbeat_timeout=cfg.cluster_heartbeat_timeout)
        frontend = self.frontend = Frontend(
            context, cfg.broker_endpoints, dispatcher.dispatch,
            max_request_bytes=cfg.limits_max_request_bytes, socket_mode=cfg.broker_socket_mode,
            batch=pool.batch, on_disconnect=workers.disconnected,
            stream_window=cfg.limits_max_in_flight_per_worker, reply_batch=pool.replies,
            budget=MemoryBudget(cfg.limits_memory_budget, cfg.limits_worker_memory),
            max_workers=cfg.limits_max_workers,
            access=access, metrics=metrics, on_peer=workers.peer_seen,
            knows=workers.knows, belongs_to_open=workers.belongs_to_open,
        )
        janitor.frontend = frontend
        dispatcher.continuous.push = frontend.push  # continuous-query events
        janitor.stalled_timeout = cfg.limits_stalled_request_timeout
        watch_broker(metrics, asyncio.get_running_loop(), pool=pool, dispatcher=dispatcher,
                     workers=workers, frontend=frontend, janitor=janitor)
        return frontend

    async def _serve(self, context: zmq.Context[Any], access: Access, listeners: Listeners,
                     metrics_server: MetricsServer | None) -> None:
        """Listen (ZAP first), serve until a stop signal, then drain."""
        assert self.frontend is not None and self.janitor is not None
        cfg = self.cfg
        access.start(context)
        self.frontend.bind(listeners)
        await self.frontend.start()
        self.janitor.start()
        if metrics_server is not None:
            metrics_server.start()  # its own thread: a scrape never runs on the loop
        admin = admin_endpoint(cfg)
        if admin:
            self.admin = AdminServer(context, admin, self, mode=cfg.broker_admin_socket_mode,
                                     group=cfg.broker_admin_group)
            self.admin.start(listeners)
        listeners.unused()
        self._install_signals()
        self._spawn(self._announce_ready(), "ready")
        await self._stop.wait()
        await self._drain()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce_ready(self) -> None:
        """Connect to the nodes; READY=1 after the first handshake or connect_timeout."""
        assert self.pool is not None
        await self.pool.start(wait=self.cfg.cluster_connect_timeout)
        if self._stop.is_set():
            return
        nodes_ready = len(self.pool.ready)
        if self._predecessor is not None:
            self._write_pid()
            upgrade.tell_ready(self._predecessor)
            self._predecessor = None
        sd_notify(f"READY=1\nSTATUS={self.status()}")
        self._heartbeat.start()
        _log.info("ready", pid=os.getpid(), nodes_ready=nodes_ready,
                  event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0])

    # -- single instance ----------------------------------------------------------------------

    def _take_lock(self) -> None:
        """The single-instance flock, holding our pid (for ``ignite-broker upgrade``).  A
        broker started by ``upgrade`` inherits the lock of the one it replaces."""
        path = lock_path(self.cfg)
        inherited = upgrade.inherited_lock()
        if path is None:
            if inherited is not None:
                os.close(inherited)
            return
        ensure_socket_dir(os.path.dirname(path) or ".", "lock file directory")
        if inherited is not None and _same_file(inherited, path):
            self._lock_file = os.fdopen(inherited, "a+")
            return
        if inherited is not None:
            os.close(inherited)
        fh = open(path, "a+")  # noqa: SIM115 - held open for the broker's life
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise ConfigError(
                f"another broker holds {path}; refusing to steal its socket") from None
        self._lock_file = fh
        self._write_pid()

    def _write_pid(self) -> None:
        if self._lock_file is not None:
            self._lock_file.seek(0)
            self._lock_file.truncate()
            self._lock_file.write(f"{os.getpid()}\n")
            self._lock_file.flush()

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()

    # -- signals and drain --------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGQUIT, self._exit_now, signal.SIGQUIT)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        loop.add_signal_handler(signal.SIGUSR2, self._upgrade_requested)

    def _upgrade_requested(self) -> None:
        if self._upgrading or self._stop.is_set():
            _log.warning("upgrade_ignored", reason="already upgrading or stopping")
            return
        self._upgrading = True
        self._spawn(self._upgrade(), "upgrade")

    async def _upgrade(self) -> None:
        """Hand the listening sockets to a new broker process; stop once it is ready."""
        assert self.frontend is not None
        lock_fd = self._lock_file.fileno() if self._lock_file is not None else None
        listeners = self.frontend.listeners
        try:
            successor = upgrade.spawn(listeners, lock_fd)
        except OSError as exc:
            _log.error("upgrade_failed", reason=f"cannot start the new broker: {exc}")
            self._upgrading = False
            return
        listeners.handed_over = True  # the files stay if we stop while it starts
        if not await successor.ready(self.cfg.cluster_connect_timeout + 60.0):
            _log.error("upgrade_failed", successor=successor.pid,
                       reason="the new broker exited or was not ready in time; still serving")
            listeners.handed_over = False
            self._write_pid()
            self._upgrading = False
            return
        _log.info("upgraded", successor=successor.pid)
        sd_notify(f"MAINPID={successor.pid}")  # under systemd, the new one is the service
        notify.detach()
        self._on_stop_signal(signal.SIGUSR2)

    def reload(self) -> dict[str, Any]:
        """Re-read the config file and apply the changed reloadable settings (each where its
        ``applied`` says); keep the old value of every other one.  TLS material and the
        password file are re-read for the node connections opened from now on; if they fail
        to load, nothing changes.  Returns what was applied, what needs a restart, or the
        error (the admin ``reload`` verb prints it)."""
        notify.reloading()
        try:
            report = self._reload()
        except (BrokerError, OSError) as exc:
            _log.error("reload_failed", reason=str(exc))
            report = {"ok": False, "error": str(exc)}
        sd_notify(f"READY=1\nSTATUS={self.status()}")
        return report

    def _reload(self) -> dict[str, Any]:
        new = load(self._config_path, self._overrides)
        values = {s.name: self.cfg.get(s.name) for s in SETTINGS}
        applied, refused = [], []
        for setting in SETTINGS:
            if new.get(setting.name) == values[setting.name]:
                continue
            if setting.reloadable:
                values[setting.name] = new.get(setting.name)
                applied.append(setting.name)
            else:
                refused.append(setting.name)
        cfg = Config(values)
        # node material first: if it does not load, nothing is changed
        connect = tcp_connector(build_ssl_context(cfg))
        node_protocol = protocol_config(cfg)
        self.cfg = cfg
        for apply in dict.fromkeys(_APPLY[name] for name in SETTINGS_RELOADABLE):
            apply(self, cfg)
        if self.pool is not None:  # TLS material and password, read again every time
            self.pool.reconfigure(connect=connect, protocol_config=node_protocol)
        _log.info("reloaded", applied=applied, refused_need_restart=refused)
        return {"ok": True, "applied": applied, "restart_needed": refused,
                "reread": _reread_files(cfg)}

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals > 1:
            self._exit_now(sig)
        _log.info("shutdown_requested", signal=sig.name)
        sd_notify("STOPPING=1")
        self._stop.set()

    def _exit_now(self, sig: signal.Signals) -> None:
        _log.warning("exit_now", signal=sig.name)
        os._exit(1)

    async def _drain(self) -> None:
        """Start no new work from now on (each request is answered NOT_PROCESSED, or left
        unread on a stream connection, which then gets GOING_AWAY); let the started ones (and
        anything else on the node connections) finish within broker.drain_timeout, and the
        open transactions too (those a tx_start in flight opens included): their workers are
        served what belongs to them, and told GOING_AWAY once they hold none and await no
        reply; then wait until no request has come for a moment (_QUIET)."""
        frontend, dispatcher, workers, pool = (
            self.frontend, self.dispatcher, self.workers, self.pool)
        assert frontend is not None and dispatcher is not None
        assert workers is not None and pool is not None
        lingering = workers.unfinished()
        frontend.stop_accepting((worker.identity for worker in workers), lingering)
        loop = asyncio.get_running_loop()
        started, deadline = loop.time(), loop.time() + self.cfg.broker_drain_timeout
        while ((dispatcher.in_flight or frontend.streams_busy or frontend.lingering
                or any(conn.in_flight for conn in pool.ready)
                or time.monotonic() - frontend.last_refused < _QUIET)
               and loop.time() < deadline):
            for identity in [i for i in frontend.lingering if workers.finished(i)]:
                frontend.let_go(identity)
            await asyncio.sleep(0.01)
        unfinished_tx = len(frontend.lingering)
        for identity in list(frontend.lingering):  # time is up: their transactions end here
            frontend.let_go(identity)
        _log.info("drained", seconds=round(loop.time() - started, 3),
                  unfinished=dispatcher.in_flight, streams_busy=frontend.streams_busy,
                  workers_waited_for=len(lingering), workers_cut_off=unfinished_tx)


def lock_path(cfg: Config) -> str | None:
    """The single-instance lock file (it holds the running broker's pid)."""
    return cfg.broker_lock_file or _default_lock_path(cfg.broker_endpoints)


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _default_lock_path(endpoints: list[str]) -> str | None:
    """<socket>.lock for the first socket-file endpoint (ipc:// or unix://)."""
    for endpoint in endpoints:
        for scheme in ("ipc://", "unix://"):
            if endpoint.startswith(scheme):
                return endpoint[len(scheme):] + ".lock"
    return None


# -- where each reloadable setting is applied -------------------------------------------------


def _apply_log(broker: Broker, cfg: Config) -> None:
    log.configure(cfg.log_level, cfg.log_format)


def _apply_frontend(broker: Broker, cfg: Config) -> None:
    if broker.frontend is not None:
        broker.frontend.max_request_bytes = cfg.limits_max_request_bytes
        broker.frontend.budget.total = cfg.limits_memory_budget
        broker.frontend.budget.per_worker = cfg.limits_worker_memory
        broker.frontend.max_workers = cfg.limits_max_workers
    if broker.workers is not None:
        broker.workers.max_workers = cfg.limits_max_workers


def _apply_janitor(broker: Broker, cfg: Config) -> None:
    if broker.janitor is not None:
        broker.janitor.liveness = cfg.limits_worker_liveness
        broker.janitor.heartbeat_timeout = cfg.cluster_heartbeat_timeout
        broker.janitor.stalled_timeout = cfg.limits_stalled_request_timeout


def _apply_dispatcher(broker: Broker, cfg: Config) -> None:
    if broker.dispatcher is not None:
        broker.dispatcher.limits = dataclasses.replace(
            broker.dispatcher.limits, default_timeout=cfg.limits_request_timeout,
            max_request_timeout=cfg.limits_max_request_timeout)


def _apply_pool(broker: Broker, cfg: Config) -> None:
    """The pool's settings (``_reload`` rebuilds the connector and handshake every time)."""
    pool = broker.pool
    if pool is None:
        return
    pool.reconfigure(connect_timeout=cfg.cluster_connect_timeout,
                     max_backoff=cfg.cluster_reconnect_max_backoff)
    pool.node_warmup = cfg.cluster_node_warmup
    pool.node_byte_budget = cfg.limits_node_bytes_in_flight
    pool.reply_sizes.cold_guess = max(cfg.limits_node_bytes_in_flight // 16, 1)
    for conn in pool.ready:
        conn.byte_budget = cfg.limits_node_bytes_in_flight


def _apply_access(broker: Broker, cfg: Config) -> None:
    if broker.access is not None:
        broker.access.reload(cfg)  # re-reads the client keys file even if unchanged


def _read_where_used(broker: Broker, cfg: Config) -> None:
    """Nothing to push: the setting is read from ``broker.cfg`` when it is used."""


def _reread_files(cfg: Config) -> list[str]:
    """The files re-read on every reload, for the report."""
    names = ["cluster.password_file", "broker.curve_client_keys_file"]
    if cfg.tls_enabled:
        names += ["tls.ca_file", "tls.cert_file", "tls.key_file"]
    return [name for name in names if cfg.get(name)]


#: Each reloadable setting -> the function that applies it (its Setting.applied says where).
_APPLY: dict[str, Callable[[Broker, Config], None]] = {
    "broker.curve_client_keys": _apply_access,
    "broker.curve_client_keys_file": _apply_access,
    "broker.drain_timeout": _read_where_used,
    "cluster.connect_timeout": _apply_pool,
    "cluster.reconnect_max_backoff": _apply_pool,
    "cluster.heartbeat_timeout": _apply_janitor,
    "cluster.node_warmup": _apply_pool,
    "limits.request_timeout": _apply_dispatcher,
    "limits.max_request_timeout": _apply_dispatcher,
    "limits.worker_liveness": _apply_janitor,
    "limits.max_request_bytes": _apply_frontend,
    "limits.memory_budget": _apply_frontend,
    "limits.worker_memory": _apply_frontend,
    "limits.node_bytes_in_flight": _apply_pool,
    "limits.max_workers": _apply_frontend,
    "limits.stalled_request_timeout": _apply_janitor,
    "log.level": _apply_log,
    "log.format": _apply_log,
}
SETTINGS_RELOADABLE = tuple(s.name for s in SETTINGS if s.reloadable)
