"""The broker's settings: one table (name, type, default, reloadable and where a reload applies
it, secret), TOML loading, environment and command-line overrides, and the checks ``run`` and
``check-config`` share.

Every setting lives in ``SETTINGS``; nothing else defines one.  In the TOML file a setting
``section.key`` is written as ``key`` under ``[section]``.  Secrets are never logged or shown:
``Config.public_view()`` masks them.
"""

from __future__ import annotations

import builtins
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from protocol.ipc import DEFAULT_MAX_REQUEST_BYTES, default_endpoint, default_runtime_dir
from protocol.ipcstream import default_stream_endpoint

from .errors import ConfigError
from .log import LEVELS
from .metrics import parse_listen


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    type: type
    default: Any
    reloadable: bool
    help: str
    secret: bool = False
    item_type: builtins.type | None = None  # for lists
    applied: str = ""  # reloadable ones: what a reload changes in the running broker


def _default_endpoints() -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "IGNITE_BROKER"}
    return [default_endpoint(env, os.getuid()), default_stream_endpoint(env, os.getuid())]


# fmt: off
# log.level's values, as the settings table and its errors say them (log.LEVELS is their source).
_LEVEL_WORDS = ", ".join(list(LEVELS)[:-1]) + " or " + list(LEVELS)[-1]

SETTINGS: tuple[Setting, ...] = (
    Setting("broker.endpoints", list, None, False,
            "endpoints to bind: ZeroMQ ipc:// and tcp://, and unix:// (length-prefixed "
            "msgpack on a Unix stream socket, the fastest local path); default: "
            "broker.sock (ipc://) and broker.stream (unix://) under the runtime directory",
            item_type=str),
    Setting("broker.admin_endpoint", str, "", False,
            "admin socket (`ignite-broker admin`), always bound whatever the endpoints: "
            "ipc://PATH; default: admin.sock next to the first ipc:// or unix:// socket, "
            "else in the default runtime directory"),
    Setting("broker.admin_socket_mode", int, 0o600, False,
            "file mode of the admin socket (0600: the broker's user only; 0660 with "
            "broker.admin_group lets that group administer the broker)"),
    Setting("broker.admin_group", str, "", False,
            "group (name or number) the admin socket file is given; empty: the broker's own"),
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
            "CURVE public keys (40-char Z85) of the clients tcp:// serves", item_type=str,
            applied="the ZAP handler: the next tcp:// handshake"),
    Setting("broker.curve_client_keys_file", str, "", True,
            "more allowed client public keys: a file with one Z85 key per line (# comments), "
            "or a directory of ZeroMQ public certificates (*.key)",
            applied="the ZAP handler, re-read on every reload: the next tcp:// handshake"),
    Setting("broker.drain_timeout", float, 10.0, True,
            "on SIGTERM, seconds the requests already started, and the transactions open, get "
            "to finish; new work is answered NOT_PROCESSED (the stub re-sends it to the next "
            "broker)",
            applied="read when the next stop begins"),
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
    Setting("cluster.connect_timeout", float, 10.0, True, "seconds for TCP+TLS+handshake",
            applied="the node pool: the next connection attempt"),
    Setting("cluster.reconnect_max_backoff", float, 5.0, True,
            "longest pause between attempts to reach a lost node (seconds)",
            applied="the node pool: the next pause between attempts"),
    Setting("cluster.heartbeat_interval", float, 5.0, False,
            "idle seconds before a heartbeat is sent to a node (a third of the server's idle "
            "timeout when that is shorter)"),
    Setting("cluster.heartbeat_timeout", float, 5.0, True,
            "a node that does not answer a heartbeat within this many seconds is taken out "
            "of routing and reconnected with backoff",
            applied="the janitor: heartbeats sent from then on"),
    Setting("cluster.node_warmup", float, 2.0, True,
            "seconds a node that was unreachable is kept out of routing after it answers again "
            "(it may still be joining the cluster)",
            applied="the node pool: the next node that comes back"),
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
            "deadline for requests that carry none (seconds)",
            applied="the dispatcher: requests arriving from then on"),
    Setting("limits.max_request_timeout", float, 600.0, True,
            "the longest the broker serves a request (seconds), whatever deadline it carries: "
            "a later deadline is brought forward to this",
            applied="the dispatcher: requests arriving from then on"),
    Setting("limits.queue_wait", float, 5.0, False,
            "seconds a request waits for a node while none is reachable, before it fails "
            "with 'cluster unavailable'"),
    Setting("limits.coalesce_reads", bool, False, False,
            "identical concurrent reads (get, get_all, contains_key(s), outside transactions) "
            "from different workers share one cluster request; a joined read may miss a write "
            "acknowledged after the shared request was sent"),
    Setting("limits.batch_requests", bool, True, False,
            "single-key gets, and puts of distinct keys, outside transactions, sent by "
            "workers in the same event-loop iteration for the same node go to it as one "
            "get_all/put_all (only those identical but for the key: cache, flags, expiry); "
            "each request still gets its own answer or error"),
    Setting("limits.batch_max_keys", int, 256, False,
            "keys in one automatic batch (limits.batch_requests) at most"),
    Setting("limits.batch_max_bytes", int, 256 * 1024, False,
            "bytes of keys and values in one automatic batch at most"),
    Setting("limits.worker_liveness", float, 5.0, True,
            "seconds of silence after which a worker's transactions are rolled back and its "
            "cursors closed",
            applied="the janitor: its next sweep"),
    Setting("limits.max_in_flight_per_worker", int, 1024, False,
            "requests one worker may have in flight before it gets 'overloaded'"),
    Setting("limits.max_in_flight_total", int, 65536, False,
            "requests the whole broker may have in flight before workers get 'overloaded'"),
    Setting("limits.max_request_bytes", int, DEFAULT_MAX_REQUEST_BYTES, True,
            "largest request frame accepted from a worker",
            applied="the front end: the next request read"),
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
            "destroy, SQL CREATE TABLE and DROP TABLE) one worker may make per second; "
            "beyond, they get 'overloaded'. Each one "
            "holds every cache operation of the cluster while it runs"),
    Setting("limits.cache_changes_burst", int, 50, False,
            "cache starts and stops one worker may make at once before "
            "limits.cache_changes_per_second applies"),
    Setting("limits.cache_changes_duty", float, 0.02, False,
            "the share of time the cache starts and stops of all workers together may hold "
            "the cluster (each holds every cache operation while it runs); beyond, they wait, "
            "workers in turn, within their deadlines"),
    Setting("limits.cache_changes_hold_burst", float, 10.0, False,
            "seconds of cache starts and stops the broker may send at once before "
            "limits.cache_changes_duty applies"),
    Setting("limits.node_max_active_tx_per_connection", int, 100, False,
            "the nodes' ThinClientConfiguration.maxActiveTxPerConnection: the broker spreads "
            "transactions over its node connections to stay below it"),
    Setting("limits.node_max_open_cursors_per_connection", int, 128, False,
            "the nodes' ClientConnectorConfiguration.maxOpenCursorsPerConnection: the broker "
            "spreads cursors over its node connections to stay below it"),
    Setting("limits.memory_budget", int, 256 * 1024 * 1024, True,
            "bytes of worker requests the broker holds at once (read but unanswered): beyond "
            "it stream workers are read no further and ZeroMQ workers get 'overloaded'",
            applied="the front end's memory budget: the next request read"),
    Setting("limits.worker_memory", int, 32 * 1024 * 1024, True,
            "one worker's share of limits.memory_budget (at least limits.max_request_bytes)",
            applied="the front end's memory budget: the next request read"),
    Setting("limits.node_bytes_in_flight", int, 32 * 1024 * 1024, True,
            "bytes one node connection may have in flight (request bodies plus the answers "
            "expected, learned per cache): beyond it requests wait in the broker, in order, "
            "so that many big answers at once cannot exhaust a node's heap",
            applied="every node connection: the next request sent"),
    Setting("limits.max_workers", int, 4096, True,
            "workers served at once (unix:// connections and ZeroMQ sockets): a new "
            "connection beyond it is closed, a new ZeroMQ socket's requests get 'overloaded'",
            applied="the front end and the worker registry: the next new worker"),
    Setting("limits.stalled_request_timeout", float, 10.0, True,
            "seconds a unix:// worker may leave a request half sent before its connection "
            "is closed (what it holds is freed)",
            applied="the janitor: its next sweep"),
    Setting("log.level", str, "info", True, _LEVEL_WORDS,
            applied="the logger, at once"),
    Setting("log.format", str, "console", True, "console or json",
            applied="the logger, at once"),
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


#: Numeric cluster.* and limits.* settings that may be 0 (every other one must be above 0).
_MAY_BE_ZERO = frozenset({"cluster.node_warmup", "limits.queue_wait"})


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
        return str(self.cluster_password)


def load(path: str | None = None, overrides: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] | None = None) -> Config:
    """Defaults, then the TOML file, then ``IGNITE_BROKER__SECTION__KEY`` environment
    variables, then command-line overrides; validated."""
    values = {s.name: s.default for s in SETTINGS}
    if path:
        values.update(_read_toml(path))
    values.update(env_overrides(os.environ if environ is None else environ))
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


#: Environment variables that set a setting: IGNITE_BROKER__LIMITS__REQUEST_TIMEOUT=5 is
#: limits.request_timeout = 5 (for containers, where a file is awkward to change).
ENV_PREFIX = "IGNITE_BROKER__"


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as ``IGNITE_BROKER__SECTION__KEY`` variables, typed by the table:
    numbers and booleans (true/false/1/0/yes/no) as written, lists comma-separated or as a
    TOML array (``["a:1", "b:2"]``); ConfigError names the variable that is wrong."""
    values: dict[str, Any] = {}
    for var, text in environ.items():
        if not var.startswith(ENV_PREFIX):
            continue
        name = var[len(ENV_PREFIX):].lower().replace("__", ".", 1)
        setting = _BY_NAME.get(name)
        if setting is None:
            raise ConfigError(f"environment variable {var}: unknown setting {name!r} "
                              "(`ignite-broker settings` lists them)")
        try:
            values[name] = _coerce(setting, _from_text(setting, text))
        except (ValueError, ConfigError) as exc:
            shown = "(value not shown)" if setting.secret else repr(text)
            raise ConfigError(f"environment variable {var} = {shown}: {name} must be "
                              f"{_type_name(setting)}") from exc
    return values


def _type_name(setting: Setting) -> str:
    if setting.item_type is not None:
        return f"a list of {setting.item_type.__name__}"
    return {bool: "true or false", int: "an integer", float: "a number"}.get(
        setting.type, setting.type.__name__)


def _from_text(setting: Setting, text: str) -> Any:
    kind = setting.type
    if kind is str:
        return text
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError(text)
    if kind is int:
        return int(text.strip(), 0)  # 0o660 and 0x10 as well as 10
    if kind is float:
        return float(text)
    if text.strip().startswith("["):  # a TOML array
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(text) from exc
    items = [item.strip() for item in text.split(",") if item.strip()]
    return [int(item, 0) for item in items] if setting.item_type is int else items


def _coerce(setting: Setting, value: Any) -> Any:
    if setting.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, setting.type) or (setting.type is int and isinstance(value, bool)):
        # A secret's value is never echoed, whatever its type (TOML `password = 1234`).
        shown = f"a {type(value).__name__} (value not shown)" if setting.secret else repr(value)
        hint = " (quote it in TOML)" if setting.secret and setting.type is str else ""
        raise ConfigError(
            f"setting {setting.name} must be {setting.type.__name__}{hint}, got {shown}")
    entries: Any = value  # a list here when item_type is set (checked above)
    if setting.item_type and not all(
            isinstance(v, setting.item_type) and not (setting.item_type is int
                                                      and isinstance(v, bool)) for v in entries):
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
        if endpoint.startswith("tcp://"):
            port = endpoint.rsplit(":", 1)[-1]
            if port != "*" and not (port.isdigit() and 0 < int(port) < 65536):
                raise ConfigError(f"broker.endpoints: {endpoint!r}: the port must be "
                                  "1..65535 (or * for any)")
    if values["cluster.connections_per_node"] < 1:
        raise ConfigError("cluster.connections_per_node must be at least 1")
    for name in _AT_LEAST_ONE:
        if values[name] < 1:
            raise ConfigError(f"{name} must be at least 1")
    for setting in SETTINGS:
        if setting.name.startswith(("cluster.", "limits.")) and setting.type in (int, float):
            value = values[setting.name]
            if value < 0 or (value == 0 and setting.name not in _MAY_BE_ZERO):
                least = "0 or more" if setting.name in _MAY_BE_ZERO else "more than 0"
                raise ConfigError(f"{setting.name} must be {least}, got {value!r}")
    if values["limits.request_timeout"] > values["limits.max_request_timeout"]:
        raise ConfigError("limits.request_timeout must be at most limits.max_request_timeout")
    if values["limits.cache_changes_duty"] > 1:
        raise ConfigError("limits.cache_changes_duty is a share of time: at most 1, got "
                          f"{values['limits.cache_changes_duty']!r}")
    for name in ("broker.socket_mode", "broker.admin_socket_mode"):
        if not 0 <= values[name] <= 0o777:
            raise ConfigError(f"{name} must be a file mode (0o000..0o777), got {values[name]!r}")
    if values["log.level"] not in LEVELS:
        raise ConfigError(f"log.level must be {_LEVEL_WORDS}")
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


def admin_endpoint(cfg: Config) -> str:
    """The admin socket, bound whatever the endpoints: configured, else admin.sock beside the
    first ipc:// or unix:// socket file, else in the default runtime directory."""
    if cfg.broker_admin_endpoint:
        return str(cfg.broker_admin_endpoint)
    for endpoint in cfg.broker_endpoints:
        for scheme in ("ipc://", "unix://"):
            if endpoint.startswith(scheme) and not endpoint.startswith(scheme + "@"):
                return "ipc://" + str(endpoint)[len(scheme):].rsplit("/", 1)[0] + "/admin.sock"
    env = {k: v for k, v in os.environ.items() if k != "IGNITE_BROKER"}
    return f"ipc://{default_runtime_dir(env, os.getuid())}/admin.sock"


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"cluster.nodes: node address {address!r} must be HOST:PORT")
    if not 0 < int(port) < 65536:
        raise ConfigError(f"cluster.nodes: node address {address!r}: the port must be 1..65535")
    return host.strip("[]"), int(port)


def _socket_paths(cfg: Config) -> list[tuple[str, str]]:
    """(setting, path) of every socket file and the lock file (abstract @names have none)."""
    paths = []
    for setting, endpoint in [*(("broker.endpoints", e) for e in cfg.broker_endpoints),
                              ("broker.admin_endpoint", admin_endpoint(cfg))]:
        for scheme in ("ipc://", "unix://"):
            if endpoint.startswith(scheme) and not endpoint.startswith(scheme + "@"):
                paths.append((setting, endpoint[len(scheme):]))
    if cfg.broker_lock_file:
        paths.append(("broker.lock_file", cfg.broker_lock_file))
    return paths


def file_problems(cfg: Config, *, socket_dirs: bool = True) -> list[str]:
    """What ``run`` would fail on in the files the settings name, each with its setting: a
    secret or TLS file missing or unreadable, a socket directory this user cannot create
    or write in.  ``check-config`` refuses a configuration with any; ``run`` too (it checks
    its socket directories itself, as it makes them)."""
    problems = []
    files = [("cluster.password_file", cfg.cluster_password_file),
             ("broker.curve_secret_key_file", cfg.broker_curve_secret_key_file)]
    if cfg.tls_enabled:
        files += [("tls.ca_file", cfg.tls_ca_file), ("tls.cert_file", cfg.tls_cert_file),
                  ("tls.key_file", cfg.tls_key_file)]
    for setting, path in files:
        if path and not os.path.isfile(path):
            problems.append(f"{setting}: {path} does not exist (or is not a file)")
        elif path and not os.access(path, os.R_OK):
            problems.append(f"{setting}: {path} is not readable by this user (uid {os.getuid()})")
    for setting, path in _socket_paths(cfg) if socket_dirs else ():
        directory = os.path.dirname(os.path.abspath(path))
        existing = directory
        while not os.path.isdir(existing):
            existing = os.path.dirname(existing)
        if not os.access(existing, os.W_OK | os.X_OK):
            what = "" if existing == directory else f" (to create {directory})"
            problems.append(f"{setting}: cannot write in {existing}{what} as uid {os.getuid()}")
    return list(dict.fromkeys(problems))
