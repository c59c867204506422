"""What ``Client`` and ``AioClient`` share: the constructor and its keyword policy, the
properties, the binary-type registry, and every client method that talks to the broker,
written once as a spec (see calls.py).

Connection-level settings belong to the broker.  The pyignite keyword arguments are handled so
that nothing is silently ignored: ``timeout`` and ``handshake_timeout`` keep their meaning
(per-request and connect budgets), and ``connect_timeout`` (new) bounds the wait for a broker
that is not there at all; TLS and credential arguments are accepted only when they ask
for nothing (``use_ssl=False``, ``username=None`` ...) and refused otherwise, because the
broker holds the TLS material and credentials and the stub never carries secrets.
"""

from __future__ import annotations

import importlib
import os
import time
from collections import OrderedDict

from .binary import Registry, entity_id, java_hash, schema_id
from .calls import Call, op_code_of, shared
from .datatypes import prop_codes
from .exceptions import (
    BinaryTypeError,
    CacheCreationError,
    NodeMismatchError,
    NotSupportedError,
    ParameterError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any

    from .connection import ProtocolContext
    from .wire import Codec

#: pyignite keyword arguments that configure node connections (TLS, credentials).
SECURITY_KWARGS = frozenset({
    "use_ssl", "ssl_version", "ssl_ciphers", "ssl_cert_reqs", "ssl_keyfile",
    "ssl_keyfile_password", "ssl_certfile", "ssl_ca_certfile", "username", "password",
})
DEFAULT_TIMEOUT = 30.0  # seconds per request when pyignite's ``timeout`` is None (its default)
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
#: Seconds a request waits for a broker that is not there at all (see connect_timeout_of).
ENV_CONNECT_TIMEOUT = "IGNITE_BROKER_CONNECT_TIMEOUT"
DEFAULT_HEARTBEAT = 5.0 / 3  # seconds of silence before a channel holding resources is pinged
_ASSUMED_PROTOCOL = (1, 7, 0)


def _given_or_env(given: Any, name: str, environ: Any, variable: str) -> tuple[Any, str]:
    """The argument ``name`` as given, else the environment ``variable`` (empty: unset, None),
    and how to name whichever was taken in an error message."""
    if given is not None:
        return given, name
    return environ.get(variable) or None, f"${variable}"


def connect_timeout_of(given: Any, environ: Any = os.environ) -> float:
    """How long a request waits while nobody is there (no socket file; tcp://: no answer):
    ``connect_timeout=``, else $IGNITE_BROKER_CONNECT_TIMEOUT, else the default (5 s)."""
    from .core import DEFAULT_CONNECT_TIMEOUT

    given, source = _given_or_env(given, "connect_timeout", environ, ENV_CONNECT_TIMEOUT)
    if given is None:
        return DEFAULT_CONNECT_TIMEOUT
    try:
        value = float(given)
    except (TypeError, ValueError):
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise ParameterError(f"{source} should be a positive number of seconds, not {given!r}")
    return value


def label_of(given: Any, environ: Any = os.environ) -> str | None:
    """The worker's label for the broker's metrics: ``label=``, else $IGNITE_BROKER_LABEL,
    else none; ParameterError when it breaks the rule of protocol.ipc.label_problem."""
    from protocol.ipc import ENV_LABEL, label_problem

    given, source = _given_or_env(given, "label", environ, ENV_LABEL)
    if given is None:
        return None
    problem = label_problem(given)
    if problem is not None:
        raise ParameterError(f"{source}: {problem}, not {given!r}"[:200])
    return str(given)


def check_kwargs(kwargs: dict[str, Any], allowed: frozenset[str]) -> None:
    """Refuse what the stub cannot honour, with pyignite's exception class (ParameterError)."""
    asked = sorted(k for k in SECURITY_KWARGS & kwargs.keys() if kwargs[k])
    if asked:
        raise ParameterError(
            f"{', '.join(asked)}: TLS and credentials are configured in the broker "
            "(broker.toml [tls] and [cluster] username/password_file), never in workers; the "
            "stub does not carry secrets. Remove these arguments.")
    unknown = sorted(kwargs.keys() - SECURITY_KWARGS - allowed)
    if unknown:
        raise ParameterError(
            f"Unexpected parameter for connection initialization: `{unknown[0]}`")


def connect_nodes(args: tuple[Any, ...]) -> list[str]:
    """pyignite's connect() forms: (), (host, port), ([(host, port), ...]) as "host:port"."""
    if not args:
        return []  # pyignite means localhost:10800; the broker means "whatever it serves"
    if len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], int):
        return [f"{args[0]}:{args[1]}"]
    if len(args) == 1 and not isinstance(args[0], str | bytes):
        try:
            nodes = list(args[0])
        except TypeError:
            nodes = None
        if nodes is not None and all(isinstance(n, tuple | list) and len(n) == 2
                                     for n in nodes):
            return [f"{host}:{port}" for host, port in nodes]
    raise ConnectionError("Connection parameters are not valid.")


def parse_settings(settings: Any) -> tuple[str, dict[int, Any] | None]:
    """pyignite's ``__parse_settings``: a name, or a dict of PROP_* with at least PROP_NAME."""
    if isinstance(settings, str):
        return settings, None
    if isinstance(settings, dict) and prop_codes.PROP_NAME in settings:
        name = settings[prop_codes.PROP_NAME]
        if len(settings) == 1:
            return name, None
        if not set(settings).issubset(prop_codes.PROP_CODES):
            raise ParameterError("One or more settings was not recognized")
        return name, settings
    raise ParameterError("You should supply at least cache name")


def cache_name_of(cache: Any) -> str | int:
    """A cache argument given as a Cache, a name or an id (ids go as they are)."""
    name: str | int = getattr(cache, "name", cache)
    return name


class NodeDescription:
    """What ``random_node``/``get_best_node`` return: the node the broker would use.

    pyignite returns its Connection object; this has the attributes people read from it
    (``host``, ``port``, ``uuid``, ``alive``) and no socket.
    """

    __slots__ = ("alive", "host", "info", "port", "uuid")

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.host = info.get("host")
        self.port = info.get("port")
        node_id = info.get("uuid") or info.get("node_id")
        self.uuid = node_id
        self.alive = bool(info.get("alive", True))

    @property
    def closed(self) -> bool:
        return not self.alive

    @property
    def failed(self) -> bool:
        return not self.alive

    def __repr__(self) -> str:
        return f"{self.host or '?'}:{self.port or '?'}"


class ClientSpecs:
    """The shared half of Client and AioClient."""

    # Classes of the flavour; the last three as "module:Name", imported on first use.
    _cache_class: type
    _sql_cursor_class: str
    _tx_class: str
    _cluster_class: str
    _allowed_kwargs = frozenset({"timeout", "handshake_timeout", "connect_timeout",
                                 "curve_serverkey", "curve_publickey", "curve_secretkey"})

    def __init__(self, compact_footer: bool | None = None, partition_aware: bool = True,
                 event_listeners: Any = None, *, broker: str | None = None,
                 **kwargs: Any) -> None:
        self.label = label_of(kwargs.pop("label", None))
        check_kwargs(kwargs, self._allowed_kwargs)
        timeout = kwargs.get("timeout")
        handshake_timeout = kwargs.get("handshake_timeout", DEFAULT_HANDSHAKE_TIMEOUT)
        if timeout is not None and timeout <= 0:
            raise ParameterError("timeout should be positive (seconds per request)")
        if handshake_timeout is None or handshake_timeout <= 0.0:
            raise ParameterError("handshake_timeout should be positive")
        self._compact_footer = compact_footer
        self._partition_aware = partition_aware
        self._connection_args = dict(kwargs)
        self._timeout = float(timeout) if timeout is not None else DEFAULT_TIMEOUT
        self._handshake_timeout = float(handshake_timeout)
        self._connect_timeout = connect_timeout_of(kwargs.get("connect_timeout"))
        self._endpoint = broker or _default_endpoint()
        self._event_listeners: Any = _NO_LISTENERS
        if event_listeners:
            from .monitoring import _EventListeners

            self._event_listeners = _EventListeners(event_listeners)
        self._registry = Registry()
        self._codec_instance: Codec | None = None
        self._protocol_context: ProtocolContext | None = None
        self.broker_info: dict[str, Any] | None = None
        self._heartbeat = DEFAULT_HEARTBEAT

    def __repr__(self) -> str:
        return f"<libclient.{type(self).__name__} broker={self._endpoint}>"

    # -- properties (pyignite's) ------------------------------------------------------------

    @property
    def broker(self) -> str:
        """The broker endpoint this client talks to."""
        return self._endpoint

    @property
    def protocol_context(self) -> ProtocolContext | None:
        """The protocol the broker speaks to the nodes (None before ``connect``)."""
        return self._protocol_context

    @protocol_context.setter
    def protocol_context(self, value: ProtocolContext | None) -> None:
        self._protocol_context = value

    @property
    def partition_aware(self) -> bool:
        """Requested and possible; the broker routes key operations to primary nodes."""
        return self._partition_aware and self.partition_awareness_supported_by_protocol

    @property
    def partition_awareness_supported_by_protocol(self) -> bool:
        return (self.protocol_context is not None
                and self.protocol_context.is_partition_awareness_supported())

    @property
    def compact_footer(self) -> bool:
        """pyignite's property; the broker writes complex objects, so it only reports."""
        return self._compact_footer or self._compact_footer is None

    @compact_footer.setter
    def compact_footer(self, value: bool) -> None:
        if self._compact_footer not in (value, None):
            raise Warning("Can not change client schema approach.")
        self._compact_footer = value

    # -- plain methods ------------------------------------------------------------------------

    def register_cache(self, cache_id: int) -> None:
        """pyignite's partition-map hook; the broker keeps partition maps."""

    def sql(self, query_str: str, page_size: int = 1024, query_args: Any = None,
            schema: str | None = "PUBLIC", statement_type: int = 0,
            distributed_joins: bool = False, local: bool = False, replicated_only: bool = False,
            enforce_join_order: bool = False, collocated: bool = False, lazy: bool = False,
            include_field_names: bool = False, max_rows: int = -1, timeout: int = 0,
            cache: Any = None) -> Any:
        """Run an SQL fields query: a cursor of rows (lists), field names first if asked."""
        args: dict[str, Any] = {
            "query": query_str, "schema": schema, "page_size": page_size,
            "statement_type": int(statement_type), "distributed_joins": distributed_joins,
            "local": local, "replicated_only": replicated_only,
            "enforce_join_order": enforce_join_order, "collocated": collocated, "lazy": lazy,
            "include_field_names": include_field_names, "max_rows": max_rows,
            "timeout": timeout,
        }
        if cache is not None:
            args["cache"] = cache_name_of(cache)
            args["schema"] = None  # pyignite: with a cache, the schema is ignored
        return _load(self._sql_cursor_class)(self, args, query_args)

    def tx_start(self, concurrency: int = 1, isolation: int = 1, timeout: int = 0,
                 label: str | None = None) -> Any:
        """A transaction for this thread (or task); cache operations inside it join it.

        Defaults: TransactionConcurrency.PESSIMISTIC, TransactionIsolation.REPEATABLE_READ.
        """
        return _load(self._tx_class)(self, concurrency, isolation, timeout, label)

    def get_cluster(self) -> Any:
        return _load(self._cluster_class)(self)

    # -- specs ------------------------------------------------------------------------------

    def _hello(self, nodes: list[str]) -> Generator[Call, Any, None]:
        try:
            args: dict[str, Any] = {"nodes": nodes, "pid": os.getpid()}
            if self.label is not None:  # what the broker's metrics count this worker under
                args["label"] = self.label
            info = yield Call("hello", args, idempotent=True)
        except ParameterError as exc:
            raise NodeMismatchError(str(exc)) from exc
        from .connection import BitmaskFeature, ProtocolContext

        self.broker_info = info
        version = tuple(info.get("protocol_version") or _ASSUMED_PROTOCOL)
        bits = info.get("features")
        features = (BitmaskFeature.from_bits(bits) if bits is not None
                    else BitmaskFeature.CLUSTER_API)
        self._protocol_context = ProtocolContext(version, features)
        liveness = info.get("worker_liveness_s")
        if liveness:  # the broker frees a silent worker's cursors/transactions after this
            self._heartbeat = max(0.05, liveness / 3)

    def _create(self, op: str, settings: Any) -> Generator[Call, Any, Any]:
        name, config = parse_settings(settings)
        args: dict[str, Any] = {"name": name}
        if config is not None:
            args = {"config": self._codec.encode_config(config)}
            op_code = 1053 if op == "cache_create" else 1054
        else:
            op_code = None
        yield Call(op, args, idempotent=op == "cache_get_or_create", error=CacheCreationError,
                   op_code=op_code)
        return self._cache_class(self, name)

    @shared
    def create_cache(self, settings: Any) -> Generator[Call, Any, Any]:
        """Create a cache (a name or a dict of PROP_* codes); CacheCreationError if it exists."""
        return (yield from self._create("cache_create", settings))

    @shared
    def get_or_create_cache(self, settings: Any) -> Generator[Call, Any, Any]:
        return (yield from self._create("cache_get_or_create", settings))

    @shared
    def get_cache(self, settings: Any) -> Any:
        """A cache object without asking the cluster (only PROP_NAME is allowed)."""
        name, config = parse_settings(settings)
        if config:
            raise ParameterError("Only cache name allowed as a parameter")
        return self._cache_class(self, name)

    @shared
    def get_cache_names(self) -> Generator[Call, Any, list[str]]:
        names = yield Call("cache_names", idempotent=True)
        return list(names)

    def _get_binary_type(self, binary_type: str | int) -> Generator[Call, Any, dict[str, Any]]:
        raw = yield Call("binary_type_get", {"type": entity_id(binary_type)}, idempotent=True,
                         error=BinaryTypeError)
        return _binary_type_info(raw)

    @shared
    def get_binary_type(self, binary_type: str | int) -> Generator[Call, Any, dict[str, Any]]:
        """The cluster's metadata for a type: pyignite's dict, schemas as OrderedDicts of
        field name -> type hint."""
        return (yield from self._get_binary_type(binary_type))

    def _put_binary_type(self, type_name: str, affinity_key_field: str | None = None,
                         is_enum: bool = False, schema: Any = None,
                         ) -> Generator[Call, Any, dict[str, Any]]:
        schema = schema or {}
        if is_enum:
            fields = [[literal, int(ordinal)] for literal, ordinal in schema.items()]
        else:
            fields = [[name, _code_of(hint)] for name, hint in schema.items()]
        yield Call("binary_type_put", {"type_name": type_name,
                                       "affinity_key_field": affinity_key_field,
                                       "is_enum": bool(is_enum), "schema": fields},
                   idempotent=True, error=BinaryTypeError)
        return {"type_id": entity_id(type_name),
                "schema_id": None if is_enum else schema_id(schema)}

    @shared
    def put_binary_type(self, type_name: str, affinity_key_field: str | None = None,
                        is_enum: bool = False, schema: Any = None
                        ) -> Generator[Call, Any, dict[str, Any]]:
        """Register a type's metadata in the cluster; the local registry is left alone."""
        return (yield from self._put_binary_type(type_name, affinity_key_field, is_enum,
                                                 schema))

    def _query_binary_type(self, binary_type: str | int, schema: Any = None,
                           ) -> Generator[Call, Any, Any]:
        type_id = entity_id(binary_type)
        found = self._from_registry(type_id, schema)
        if not found:
            info = yield from self._get_binary_type(type_id)  # type: ignore[arg-type]
            self._registry.sync(type_id, info)  # type: ignore[arg-type]
            found = self._from_registry(type_id, schema)
        return found

    @shared
    def query_binary_type(self, binary_type: str | int, schema: Any = None,
                          ) -> Generator[Call, Any, Any]:
        """The registered class for a type and schema (or {schema_id: class} without one),
        fetching the cluster's metadata on a miss."""
        return (yield from self._query_binary_type(binary_type, schema))

    def _register_binary_type(self, data_class: Any, affinity_key_field: str | None = None,
                              ) -> Generator[Call, Any, None]:
        known = yield from self._query_binary_type(data_class.type_id, data_class.schema_id)
        if not known:
            yield from self._put_binary_type(data_class.type_name, affinity_key_field,
                                             schema=data_class.schema)
        self._registry.add(data_class)

    @shared
    def register_binary_type(self, data_class: Any, affinity_key_field: str | None = None,
                             ) -> Generator[Call, Any, None]:
        """Use ``data_class`` for its type; put its schema in the cluster if it is new."""
        yield from self._register_binary_type(data_class, affinity_key_field)

    @shared
    def unwrap_binary(self, value: Any) -> Any:
        """Values come back already unwrapped (the broker decodes binary objects)."""
        return value

    def _node(self, cache: Any = None, key: Any = None, key_hint: Any = None,
              ) -> Generator[Call, Any, NodeDescription]:
        args: dict[str, Any] = {}
        if cache is not None:
            args["cache"] = cache_name_of(cache)
        if key is not None:
            args["key"] = self._codec.encode(key, key_hint)
        info = yield Call("node_for", args, idempotent=True)
        return NodeDescription(info or {})

    @shared
    def get_best_node(self, cache: Any, key: Any = None, key_hint: Any = None,
                      ) -> Generator[Call, Any, NodeDescription]:
        """The node the broker would send this key's operations to."""
        return (yield from self._node(cache, key, key_hint))

    # -- values -----------------------------------------------------------------------------

    @property
    def _codec(self) -> Codec:
        codec = self._codec_instance
        if codec is None:
            from .wire import Codec

            codec = self._codec_instance = Codec(self._registry)
        return codec

    def _from_registry(self, type_id: int | None, schema: Any) -> Any:
        schemas = self._registry.schemas(type_id)  # type: ignore[arg-type]
        if schema:
            return schemas.get(schema_id(schema))
        return schemas

    def _decode(self, raw: Any) -> Generator[Call, Any, Any]:
        """Decode a result, learning the classes of complex objects met on the way."""
        from .wire import NeedBinaryType

        codec = self._codec
        while True:
            try:
                return codec.decode(raw)
            except NeedBinaryType as need:
                yield from self._learn_type(need.value)

    def _learn_type(self, value: Any) -> Generator[Call, Any, None]:
        try:
            info = yield from self._get_binary_type(value.type_id)
        except NotSupportedError:
            info = {"type_exists": False}
        self._registry.sync(value.type_id, info)
        if self._registry.find(value.type_id, schema_id(value.fields)) is None:
            self._codec.adopt(value)

    def _encode(self, pairs: dict[str, tuple[Any, Any]]) -> Generator[Call, Any, dict[str, Any]]:
        """Encode named (value, hint) pairs, noting the classes of complex objects written."""
        codec = self._codec
        written: list[type] = []
        args = {name: codec.encode(value, hint, written) for name, (value, hint) in pairs.items()}
        self._note_written(written)
        return args
        yield  # a spec (no request of its own): the broker registers new schemas itself

    def _encode_many(self, values: Any) -> Generator[Call, Any, list[Any]]:
        codec = self._codec
        written: list[type] = []
        encoded = [codec.encode(v, None, written) for v in values]
        self._note_written(written)
        return encoded
        yield  # see _encode

    def _note_written(self, written: list[type]) -> None:
        """pyignite registers the class of every object it writes; the broker puts unknown
        schemas in the cluster itself (once for all workers), so here the class only joins
        the local registry, where query_binary_type finds it as in pyignite."""
        for cls in written:
            if self._registry.find(*self._codec.ids(cls)) is not cls:
                self._registry.add(cls)

    # -- events -----------------------------------------------------------------------------

    def _query_start(self, call: Call) -> tuple[int, float, int, str] | None:
        listeners = self._event_listeners
        if not listeners.enabled_query_listener:
            return None
        code = op_code_of(call)
        if code is None:
            return None
        from .calls import OP_NAMES
        from .envelope import next_request_id
        from .monitoring import QueryStartEvent

        query = (next_request_id(), time.monotonic(), code, OP_NAMES.get(code, call.op))
        listeners.publish_query("on_query_start", QueryStartEvent(
            self._endpoint, 0, None, query[0], code, query[3]))
        return query

    def _query_end(self, query: tuple[int, float, int, str], error: Exception | None) -> None:
        from .monitoring import QueryFailEvent, QuerySuccessEvent

        query_id, started, code, name = query
        duration = int((time.monotonic() - started) * 1000)
        if error is None:
            self._event_listeners.publish_query("on_query_success", QuerySuccessEvent(
                self._endpoint, 0, None, query_id, code, name, duration))
        else:
            message = getattr(error, "message", None) or str(error)
            self._event_listeners.publish_query("on_query_fail", QueryFailEvent(
                self._endpoint, 0, None, query_id, code, name, duration, message))

    def _publish_connection(self, method: str, event: str, *args: Any) -> None:
        listeners = self._event_listeners
        if listeners.enabled_connection_listener:
            from . import monitoring

            listeners.publish_connection(method, getattr(monitoring, event)(
                self._endpoint, 0, *args))

    def _publish_handshake_start(self) -> None:
        self._publish_connection("on_handshake_start", "HandshakeStartEvent",
                                 self._protocol_context)

    def _publish_handshake_success(self) -> None:
        self._publish_connection("on_handshake_success", "HandshakeSuccessEvent",
                                 self._protocol_context, None)

    def _publish_handshake_fail(self, error: Exception) -> None:
        self._publish_connection("on_handshake_fail", "HandshakeFailedEvent",
                                 self._protocol_context, error)

    def _publish_lost(self, reason: str) -> None:
        self._publish_connection("on_connection_lost", "ConnectionLostEvent", None, reason)

    def _publish_restored(self) -> None:
        self._publish_handshake_start()
        self._publish_handshake_success()

    def _publish_closed(self) -> None:
        self._publish_connection("on_connection_closed", "ConnectionClosedEvent", None)


class _NoListeners:
    enabled_connection_listener = False
    enabled_query_listener = False


_NO_LISTENERS = _NoListeners()


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _default_endpoint() -> str:
    from .access import default_endpoint

    return default_endpoint()


def _code_of(hint: Any) -> int:
    code = getattr(hint, "type_code", None)
    if isinstance(code, bytes):
        return code[0]
    if isinstance(code, int):
        return code
    if getattr(hint, "_schema", None) is not None:  # a GenericObjectMeta class as a field type
        return 103
    raise ParameterError(f"{hint!r} is not a type hint from libclient.datatypes")


def _binary_type_info(raw: Any) -> dict[str, Any]:
    """The broker's binary_type_get answer in pyignite's ``get_binary_type`` shape.

    The broker sends Ignite's metadata: nil for an unknown type, else ``fields`` as
    [name, type code, field id] and ``schemas`` as {schema id: [field ids]}, ``enum_values``
    as [literal, ordinal]; pyignite shows ``schemas`` as OrderedDicts of field -> hint.
    """
    from .datatypes._hints import HINT_BY_CODE, BinaryObject

    if not raw or raw.get("type_exists") is False:
        return {"type_exists": False}
    info: dict[str, Any] = {"type_exists": True}
    for key in ("type_id", "type_name", "affinity_key_field", "is_enum"):
        info[key] = raw.get(key)
    if raw.get("is_enum"):
        info["enums"] = [{"literal": literal, "type_id": ordinal}
                         for literal, ordinal in raw.get("enum_values") or raw.get("enums") or ()]
    fields = {f[2]: (f[0], f[1]) for f in raw.get("fields") or ()}
    schemas = raw.get("schemas") or {}
    if isinstance(schemas, dict):  # {schema id: [field ids]}
        schemas = [[fields[fid] for fid in ids if fid in fields] for ids in schemas.values()]
    info["schemas"] = [
        OrderedDict((name, HINT_BY_CODE.get(code, BinaryObject)) for name, code in schema)
        for schema in schemas
    ]
    return info


def cache_id_of(name: str) -> int:
    """The id Ignite derives from a cache name (Java String.hashCode, not lower-cased)."""
    return java_hash(name)
