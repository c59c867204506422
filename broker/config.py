"""The broker's settings: one table (name, type, default, reloadable, secret), TOML loading and
command-line overrides.

Every setting lives in ``SETTINGS``; nothing else defines one.  In the TOML file a setting
``section.key`` is written as ``key`` under ``[section]``.  Secrets are never logged or shown:
``Config.public_view()`` masks them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from protocol.ipc import DEFAULT_MAX_REQUEST_BYTES, default_endpoint
from protocol.ipcstream import default_stream_endpoint

from .errors import ConfigError
from .metrics import parse_listen


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    type: type
    default: Any
    reloadable: bool
    help: str
    secret: bool = False
    item_type: type | None = None  # for lists


def _default_endpoints() -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "IGNITE_BROKER"}
    return [default_endpoint(env, os.getuid()), default_stream_endpoint(env, os.getuid())]


# fmt: off
SETTINGS: tuple[Setting, ...] = (
    Setting("broker.endpoints", list, None, False,
            "endpoints to bind: ZeroMQ ipc:// and tcp://, and unix:// (length-prefixed "
            "msgpack on a Unix stream socket, the fastest local path); default: "
            "broker.sock (ipc://) and broker.stream (unix://) under the runtime directory",
            item_type=str),
    Setting("broker.admin_endpoint", str, "", False,
            "admin socket (show nodes|clients|stats|topology|config|version); default: "
            "admin.sock next to the first ipc endpoint, mode 0600"),
    Setting("broker.socket_mode", int, 0o660, False,
            "file mode of ipc:// and unix:// socket files (the directory is created with 0750)"),
    Setting("broker.lock_file", str, "", False,
            "flock file that keeps a second broker off the same socket; default: <socket>.lock"),
    Setting("broker.allow_uids", list, [], False,
            "local peers (unix://, ipc://) served: these uids, plus allow_gids; root and the "
            "broker's own uid always; empty (with allow_gids empty): the socket file modes "
            "decide", item_type=int),
    Setting("broker.allow_gids", list, [], False,
            "local peers whose gid, or whose user's groups (group database), include one of "
            "these are served (see allow_uids)", item_type=int),
    Setting("broker.curve_secret_key_file", str, "", False,
            "file holding the broker's CURVE secret key (40-char Z85, or a ZeroMQ certificate "
            "file); required by tcp:// endpoints; `ignite-broker keygen` makes a pair"),
    Setting("broker.curve_client_keys", list, [], True,
            "CURVE public keys (40-char Z85) of the clients tcp:// serves", item_type=str),
    Setting("broker.curve_client_keys_file", str, "", True,
            "more allowed client public keys: a file with one Z85 key per line (# comments), "
            "or a directory of ZeroMQ public certificates (*.key)"),
    Setting("broker.drain_timeout", float, 10.0, True,
            "on SIGTERM, seconds the requests already started get to finish; those not yet "
            "started are answered NOT_PROCESSED (the stub re-sends them to the next broker)"),
    Setting("broker.event_loop", str, "auto", False,
            "event loop: auto (uvloop, a dependency, when importable; else asyncio's own), "
            "uvloop or asyncio"),
    Setting("cluster.nodes", list, ["127.0.0.1:10800"], False,
            "Ignite thin-client addresses HOST:PORT to connect to", item_type=str),
    Setting("cluster.connections_per_node", int, 1, False, "connections kept to each node"),
    Setting("cluster.max_connections_per_node", int, 4, False,
            "connections to each node the broker may grow to when its workers' transactions "
            "or cursors fill the ones it has (Ignite limits both per connection); never "
            "fewer than cluster.connections_per_node"),
    Setting("cluster.connect_timeout", float, 10.0, True, "seconds for TCP+TLS+handshake"),
    Setting("cluster.reconnect_max_backoff", float, 5.0, True,
            "longest pause between attempts to reach a lost node (seconds)"),
    Setting("cluster.heartbeat_interval", float, 5.0, False,
            "idle seconds before a heartbeat is sent to a node (a third of the server's idle "
            "timeout when that is shorter)"),
    Setting("cluster.heartbeat_timeout", float, 5.0, True,
            "a node that does not answer a heartbeat within this many seconds is taken out "
            "of routing and reconnected with backoff"),
    Setting("cluster.node_warmup", float, 2.0, True,
            "seconds a node that was unreachable is kept out of routing after it answers again "
            "(it may still be joining the cluster)"),
    Setting("cluster.username", str, "", False, "Ignite user name (authentication)"),
    Setting("cluster.password", str, "", False, "Ignite password", secret=True),
    Setting("cluster.password_file", str, "", False, "file holding the Ignite password"),
    Setting("tls.enabled", bool, False, False, "TLS to the nodes"),
    Setting("tls.ca_file", str, "", False, "CA bundle that verifies the nodes' certificates"),
    Setting("tls.verify", bool, True, False,
            "verify node certificates against ca_file (or the system store)"),
    Setting("tls.cert_file", str, "", False, "client certificate (PEM)"),
    Setting("tls.key_file", str, "", False, "client private key (PEM)"),
    Setting("tls.key_password", str, "", False, "password of key_file", secret=True),
    Setting("tls.ciphers", str, "", False, "OpenSSL cipher list for TLS 1.2 (empty: defaults)"),
    Setting("limits.request_timeout", float, 30.0, True,
            "deadline for requests that carry none (seconds)"),
    Setting("limits.queue_wait", float, 5.0, False,
            "seconds a request waits for a node while none is reachable, before it fails "
            "with 'cluster unavailable'"),
    Setting("limits.coalesce_reads", bool, False, False,
            "identical concurrent reads (get, get_all, contains_key(s), outside transactions) "
            "from different workers share one cluster request; a joined read may miss a write "
            "acknowledged after the shared request was sent"),
    Setting("limits.worker_liveness", float, 5.0, True,
            "seconds of silence after which a worker's transactions are rolled back and its "
            "cursors closed"),
    Setting("limits.max_in_flight_per_worker", int, 1024, False,
            "requests one worker may have in flight before it gets 'overloaded'"),
    Setting("limits.max_in_flight_total", int, 65536, False,
            "requests the whole broker may have in flight before workers get 'overloaded'"),
    Setting("limits.max_request_bytes", int, DEFAULT_MAX_REQUEST_BYTES, True,
            "largest request frame accepted from a worker"),
    Setting("limits.max_page_size", int, 10_000, False,
            "rows per query page a node is asked for (sql, scan, select_row); a worker asking "
            "for more gets pages of this size (a huge page makes a node run out of heap)"),
    Setting("limits.max_keys_per_request", int, 100_000, False,
            "keys or pairs in one get_all/put_all/remove_keys/... request; more is refused"),
    Setting("limits.max_transactions_per_worker", int, 32, False,
            "open transactions one worker may hold; beyond, tx_start gets 'overloaded'"),
    Setting("limits.max_cursors_per_worker", int, 100, False,
            "open query cursors one worker may hold; beyond, sql/scan get 'overloaded'"),
    Setting("limits.cache_changes_per_second", float, 1.0, False,
            "cache starts and stops (create, get-or-create of a cache not known to exist, "
            "destroy) one worker may make per second; beyond, they get 'overloaded'. Each one "
            "holds every cache operation of the cluster while it runs"),
    Setting("limits.cache_changes_burst", int, 50, False,
            "cache starts and stops one worker may make at once before "
            "limits.cache_changes_per_second applies"),
    Setting("limits.node_max_active_tx_per_connection", int, 100, False,
            "the nodes' ThinClientConfiguration.maxActiveTxPerConnection: the broker spreads "
            "transactions over its node connections to stay below it"),
    Setting("limits.node_max_open_cursors_per_connection", int, 128, False,
            "the nodes' ClientConnectorConfiguration.maxOpenCursorsPerConnection: the broker "
            "spreads cursors over its node connections to stay below it"),
    Setting("limits.memory_budget", int, 256 * 1024 * 1024, True,
            "bytes of worker requests the broker holds at once (read but unanswered): beyond "
            "it stream workers are read no further and ZeroMQ workers get 'overloaded'"),
    Setting("limits.worker_memory", int, 32 * 1024 * 1024, True,
            "one worker's share of limits.memory_budget (at least limits.max_request_bytes)"),
    Setting("limits.node_bytes_in_flight", int, 32 * 1024 * 1024, True,
            "bytes one node connection may have in flight (request bodies plus the answers "
            "expected, learned per cache): beyond it requests wait in the broker, in order, "
            "so that many big answers at once cannot exhaust a node's heap"),
    Setting("limits.max_workers", int, 4096, True,
            "workers served at once (unix:// connections and ZeroMQ sockets): a new "
            "connection beyond it is closed, a new ZeroMQ socket's requests get 'overloaded'"),
    Setting("limits.stalled_request_timeout", float, 10.0, True,
            "seconds a unix:// worker may leave a request half sent before its connection "
            "is closed (what it holds is freed)"),
    Setting("log.level", str, "info", True, "debug, info, warning or error"),
    Setting("log.format", str, "console", True, "console or json"),
    Setting("metrics.listen", str, "", False,
            "serve Prometheus/OpenMetrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464), "
            "or over HTTP on a Unix socket at an absolute path; empty: no metrics listener"),
    Setting("metrics.max_clients", int, 100, False,
            "(uid, label) pairs of workers the metrics count separately; workers beyond are "
            "counted under uid \"other\", label \"_other\""),
)
# fmt: on

_BY_NAME = {s.name: s for s in SETTINGS}
_AT_LEAST_ONE = ("limits.max_page_size", "limits.max_keys_per_request",
                 "limits.max_transactions_per_worker", "limits.max_cursors_per_worker",
                 "limits.node_max_active_tx_per_connection",
                 "limits.node_max_open_cursors_per_connection", "limits.memory_budget",
                 "limits.worker_memory", "limits.max_workers", "limits.max_request_bytes",
                 "limits.node_bytes_in_flight", "limits.cache_changes_burst",
                 "metrics.max_clients")


class Config:
    """Resolved settings, read as attributes with dots replaced by underscores
    (``cfg.cluster_nodes``)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, attr: str) -> Any:
        name = attr.replace("_", ".", 1)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(attr) from None

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError("Config is read-only")

    def get(self, name: str) -> Any:
        return self._values[name]

    def public_view(self) -> dict[str, Any]:
        """Every setting with secrets masked: safe for logs and status output."""
        return {
            s.name: ("***" if s.secret and self._values[s.name] else self._values[s.name])
            for s in SETTINGS
        }

    def node_password(self) -> str:
        if self.cluster_password_file:
            with open(self.cluster_password_file, encoding="utf-8") as fh:
                return fh.read().strip()
        return self.cluster_password


def load(path: str | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file, then command-line overrides; validated."""
    values = {s.name: s.default for s in SETTINGS}
    if path:
        values.update(_read_toml(path))
    for name, value in (overrides or {}).items():
        values[name] = _coerce(_BY_NAME[name], value)
    if not values["broker.endpoints"]:
        values["broker.endpoints"] = _default_endpoints()
    _validate(values)
    return Config(values)


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    return dict(_flatten(doc, path))


def _flatten(doc: Mapping[str, Any], path: str) -> Iterable[tuple[str, Any]]:
    for section, table in doc.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: top-level key {section!r} must be a [section]")
        for key, value in table.items():
            name = f"{section}.{key}"
            setting = _BY_NAME.get(name)
            if setting is None:
                raise ConfigError(f"{path}: unknown setting {name!r}")
            yield name, _coerce(setting, value)


def _coerce(setting: Setting, value: Any) -> Any:
    if setting.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, setting.type) or (setting.type is int and isinstance(value, bool)):
        # A secret's value is never echoed, whatever its type (TOML `password = 1234`).
        shown = f"a {type(value).__name__} (value not shown)" if setting.secret else repr(value)
        hint = " (quote it in TOML)" if setting.secret and setting.type is str else ""
        raise ConfigError(
            f"setting {setting.name} must be {setting.type.__name__}{hint}, got {shown}")
    if setting.item_type and not all(
            isinstance(v, setting.item_type) and not (setting.item_type is int
                                                      and isinstance(v, bool)) for v in value):
        raise ConfigError(f"setting {setting.name} must be a list of {setting.item_type.__name__}")
    return value


def _validate(values: dict[str, Any]) -> None:
    for address in values["cluster.nodes"]:
        parse_address(address)
    if not values["cluster.nodes"]:
        raise ConfigError("cluster.nodes must name at least one node")
    for endpoint in values["broker.endpoints"]:
        if not endpoint.startswith(("ipc://", "tcp://", "unix://")):
            raise ConfigError(f"endpoint {endpoint!r} must start with ipc://, tcp:// or unix://")
    if values["cluster.connections_per_node"] < 1:
        raise ConfigError("cluster.connections_per_node must be at least 1")
    for name in _AT_LEAST_ONE:
        if values[name] < 1:
            raise ConfigError(f"{name} must be at least 1")
    if not values["limits.cache_changes_per_second"] > 0:
        raise ConfigError("limits.cache_changes_per_second must be above 0")
    if values["log.level"] not in ("debug", "info", "warning", "error"):
        raise ConfigError("log.level must be debug, info, warning or error")
    if values["broker.event_loop"] not in ("auto", "uvloop", "asyncio"):
        raise ConfigError("broker.event_loop must be auto, uvloop or asyncio")
    if values["log.format"] not in ("console", "json"):
        raise ConfigError("log.format must be console or json")
    if values["limits.worker_memory"] < values["limits.max_request_bytes"] + 4:
        raise ConfigError("limits.worker_memory must exceed limits.max_request_bytes "
                          "(a worker's share must hold its largest request)")
    if values["limits.memory_budget"] < values["limits.worker_memory"]:
        raise ConfigError("limits.memory_budget must be at least limits.worker_memory")
    if values["metrics.listen"]:
        parse_listen(values["metrics.listen"])
    if values["cluster.password"] and values["cluster.password_file"]:
        raise ConfigError("set cluster.password or cluster.password_file, not both")
    _validate_access(values)


def _validate_access(values: dict[str, Any]) -> None:
    """tcp:// requires CURVE; ids are ids; the admin socket stays local."""
    for name in ("broker.allow_uids", "broker.allow_gids"):
        if any(v < 0 for v in values[name]):
            raise ConfigError(f"{name} holds numeric ids (>= 0); `id -u NAME` gives one")
    admin = values["broker.admin_endpoint"]
    if admin and not admin.startswith("ipc://"):
        raise ConfigError(f"broker.admin_endpoint {admin!r} must be ipc:// (the admin socket "
                          "has no authentication; its file mode 0600 is its access control)")
    tcp = [e for e in values["broker.endpoints"] if e.startswith("tcp://")]
    if not tcp:
        return
    has_keys = values["broker.curve_client_keys"] or values["broker.curve_client_keys_file"]
    if values["broker.curve_secret_key_file"] and has_keys:
        return
    endpoint = tcp[0]
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    reach = ("every host that can reach this port"
             if host in ("*", "0.0.0.0", "::", "") else "anyone who can reach it")
    raise ConfigError(
        f"{endpoint} without CURVE would serve {reach} with the broker's cluster credentials: "
        "tcp:// requires broker.curve_secret_key_file and the clients' public keys "
        "(broker.curve_client_keys or broker.curve_client_keys_file); "
        "`ignite-broker keygen` prints a keypair")


def admin_endpoint(cfg: Config) -> str | None:
    """The admin socket: configured, or admin.sock beside the first ipc endpoint."""
    if cfg.broker_admin_endpoint:
        return cfg.broker_admin_endpoint
    for endpoint in cfg.broker_endpoints:
        if endpoint.startswith("ipc://"):
            return endpoint.rsplit("/", 1)[0] + "/admin.sock"
    return None


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"node address {address!r} must be HOST:PORT")
    return host.strip("[]"), int(port)
