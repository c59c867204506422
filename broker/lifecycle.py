"""The daemon's life: start-up in a fixed order, systemd notifications, signals, and drain.

Start-up order (each step needs the ones before it):
  1. config (already loaded by the CLI) and logging
  2. single-instance lock (a second broker must not steal the ipc socket), in a directory
     nobody else can write; access rules: secret-file modes, CURVE keys
  3. TLS context for the nodes (fails early on unreadable certificates)
  4. node pool: connect to the configured nodes (waits up to connect_timeout for the first)
  5. ZAP handler (before any bind: a CURVE listener without one admits any key), then bind
     the ROUTER endpoints and the unix:// listeners
  6. sd_notify READY=1
SIGHUP: re-read the config file; reloadable settings take effect, others are logged as refused.
SIGTERM/SIGINT: stop taking requests, let in-flight ones finish (bounded), close, exit 0.
A second SIGTERM/SIGINT, or SIGQUIT, exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from protocol.ipc import IPC_VERSION

from . import __version__, log
from .access import Access, ensure_socket_dir, secret_file_warnings
from .admin import AdminServer
from .bounds import BOUND_SETTINGS
from .budget import MemoryBudget
from .config import SETTINGS, Config, admin_endpoint, load, parse_address
from .dispatch import Dispatcher, Limits
from .errors import BrokerError, ConfigError
from .frontend import Frontend
from .janitor import Janitor
from .pool import NodePool
from .stream import tcp_connector
from .workers import Workers

_log = log.get("lifecycle")

_DRAIN_SECONDS = 10.0
# cluster states, node endpoints, heartbeat, all affinity mappings
_FEATURES = frozenset({2, 3, 11, 13})


def sd_notify(message: str) -> None:
    """Tell systemd about our state when run as Type=notify; a no-op elsewhere."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.sendto(message.encode(), address)


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
        self.pool: NodePool | None = None
        self.frontend: Frontend | None = None
        self.janitor: Janitor | None = None
        self.dispatcher: Dispatcher | None = None
        self.workers: Workers | None = None
        self.admin: AdminServer | None = None
        self.access: Access | None = None
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

    async def run(self) -> int:
        cfg = self.cfg
        self._take_lock()
        for warning in secret_file_warnings(cfg):
            _log.warning("secret_file_readable_by_others", detail=warning)
        access = self.access = Access.from_config(cfg)
        ssl_context = build_ssl_context(cfg)
        self.pool = NodePool(
            self.cfg_addresses(), protocol_config(cfg), connect=tcp_connector(ssl_context),
            connect_timeout=cfg.cluster_connect_timeout,
            connections_per_node=cfg.cluster_connections_per_node,
            max_connections_per_node=cfg.cluster_max_connections_per_node,
            max_backoff=cfg.cluster_reconnect_max_backoff,
            heartbeat_interval=cfg.cluster_heartbeat_interval,
            node_warmup=cfg.cluster_node_warmup,
            node_byte_budget=cfg.limits_node_bytes_in_flight,
        )
        await self.pool.start(wait=cfg.cluster_connect_timeout)
        context = zmq.Context()
        self.workers = Workers(max_workers=cfg.limits_max_workers)
        limits = Limits(max_in_flight_per_worker=cfg.limits_max_in_flight_per_worker,
                        max_in_flight_total=cfg.limits_max_in_flight_total,
                        default_timeout=cfg.limits_request_timeout,
                        queue_wait=cfg.limits_queue_wait,
                        coalesce_reads=cfg.limits_coalesce_reads,
                        **{name: cfg.get(f"limits.{name}") for name in BOUND_SETTINGS})
        dispatcher = self.dispatcher = Dispatcher(self.pool, self.workers, self.info, limits)
        self.janitor = Janitor(self.pool, self.workers, dispatcher,
                               liveness=cfg.limits_worker_liveness,
                               heartbeat_timeout=cfg.cluster_heartbeat_timeout)
        self.frontend = Frontend(
            context, cfg.broker_endpoints, dispatcher.dispatch,
            max_request_bytes=cfg.limits_max_request_bytes, socket_mode=cfg.broker_socket_mode,
            batch=self.pool.batch, on_disconnect=self.workers.disconnected,
            stream_window=cfg.limits_max_in_flight_per_worker, reply_batch=self.pool.replies,
            budget=MemoryBudget(cfg.limits_memory_budget, cfg.limits_worker_memory),
            max_workers=cfg.limits_max_workers,
            access=access,
        )
        self.janitor.frontend = self.frontend
        self.janitor.stalled_timeout = cfg.limits_stalled_request_timeout
        try:
            access.start(context)
            self.frontend.bind()
            await self.frontend.start()
            self.janitor.start()
            self.admin = AdminServer(context, admin_endpoint(cfg), self,
                                     mode=cfg.broker_admin_socket_mode,
                                     group=cfg.broker_admin_group)
            self.admin.start()
            self._install_signals()
            sd_notify("READY=1\nSTATUS=serving")
            _log.info("ready", pid=os.getpid(), nodes_ready=len(self.pool.ready),
                      event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0])
            await self._stop.wait()
            await self._drain()
        finally:
            await self.janitor.stop()
            if self.admin is not None:
                self.admin.close()
            self.frontend.close()
            access.close()
            await self.pool.close()
            context.term()
            self._release_lock()
        _log.info("stopped")
        return 0

    # -- single instance ----------------------------------------------------------------------

    def _take_lock(self) -> None:
        path = self.cfg.broker_lock_file or _default_lock_path(self.cfg.broker_endpoints)
        if path is None:
            return
        ensure_socket_dir(os.path.dirname(path) or ".", "lock file directory")
        fh = open(path, "a+")  # noqa: SIM115 - held open for the broker's life
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise ConfigError(
                f"another broker holds {path}; refusing to steal its socket") from None
        self._lock_file = fh

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

    def reload(self) -> dict[str, Any]:
        """Re-read the config file and apply the changed reloadable settings (each where its
        ``applied`` says); keep the old value of every other one.  TLS material and the
        password file are re-read for the node connections opened from now on; if they fail
        to load, nothing changes.  Returns what was applied, what needs a restart, or the
        error (the admin ``reload`` verb prints it)."""
        sd_notify("RELOADING=1")
        try:
            report = self._reload()
        except (BrokerError, OSError) as exc:
            _log.error("reload_failed", reason=str(exc))
            report = {"ok": False, "error": str(exc)}
        sd_notify("READY=1")
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
        assert self.frontend is not None and self.pool is not None
        self.frontend.stop_accepting()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _DRAIN_SECONDS
        while any(c.in_flight for c in self.pool.ready) and loop.time() < deadline:
            await asyncio.sleep(0.02)


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
            broker.dispatcher.limits, default_timeout=cfg.limits_request_timeout)


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
    "cluster.connect_timeout": _apply_pool,
    "cluster.reconnect_max_backoff": _apply_pool,
    "cluster.heartbeat_timeout": _apply_janitor,
    "cluster.node_warmup": _apply_pool,
    "limits.request_timeout": _apply_dispatcher,
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
