"""``Cache``: pyignite's key-value API on one named cache; every method body is a spec shared
with ``AioCache`` (see calls.py), bound here to the blocking driver."""

from __future__ import annotations

from .calls import Call, bind_sync, shared
from .client_base import cache_id_of
from .datatypes import prop_codes
from .datatypes.expiry_policy import ExpiryPolicy
from .datatypes.prop_codes import PROP_QUERY_ENTITIES
from .exceptions import CacheError, NotSupportedByClusterError, SQLError
from .transaction import current_tx

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable
    from typing import Any

    from .continuous import ContinuousQuery, JavaFilter, ScanQuery
    from .cursors import ScanCursor, SqlCursor

    Spec = Generator[Call, Any, Any]

__all__ = ["PROP_CODES", "BaseCache", "Cache", "CacheInfo", "create_cache", "get_cache",
           "get_or_create_cache"]

#: Every PROP_* code a cache configuration may hold (pyignite's set).
PROP_CODES = set(prop_codes.PROP_CODES)


# pyignite's module-level helpers: the client methods of the same names.

def get_cache(client: Any, settings: Any) -> Cache:
    """A cache object without asking the cluster (only a name is allowed)."""
    cache: Cache = client.get_cache(settings)
    return cache


def create_cache(client: Any, settings: Any) -> Cache:
    """Create a cache; CacheCreationError if it exists."""
    cache: Cache = client.create_cache(settings)
    return cache


def get_or_create_cache(client: Any, settings: Any) -> Cache:
    cache: Cache = client.get_or_create_cache(settings)
    return cache


class CacheInfo:
    """pyignite's per-cache request header data: id, expiry policy, protocol context."""

    __slots__ = ("cache_id", "expiry_policy", "protocol_context")

    def __init__(self, cache_id: int, expiry_policy: ExpiryPolicy | None = None,
                 protocol_context: Any = None) -> None:
        self.cache_id = cache_id
        self.expiry_policy = expiry_policy
        self.protocol_context = protocol_context

    def __repr__(self) -> str:
        return f"CacheInfo(cache_id={self.cache_id}, expiry_policy={self.expiry_policy})"


def _peek_modes(peek_modes: Any) -> list[int]:
    if peek_modes is None:
        return []
    if not isinstance(peek_modes, list | tuple):
        peek_modes = [peek_modes]
    return [int(m) for m in peek_modes]


class CacheSpecs:
    """The shared half of Cache and AioCache (pyignite's ``BaseCache``)."""

    def __init__(self, client: Any, name: str, expiry_policy: ExpiryPolicy | None = None):
        self._client = client
        self._name = name
        self._settings: dict[int, Any] | None = None
        self._cache_info = CacheInfo(cache_id_of(name), expiry_policy, client.protocol_context)
        client.register_cache(self._cache_info.cache_id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r}>"

    @property
    def name(self) -> str:
        return self._name

    @property
    def client(self) -> Any:
        return self._client

    @property
    def cache_info(self) -> CacheInfo:
        return self._cache_info

    @property
    def cache_id(self) -> int:
        return self._cache_info.cache_id

    def with_expire_policy(self, expiry_policy: ExpiryPolicy | None = None,
                           create: Any = ExpiryPolicy.UNCHANGED,
                           update: Any = ExpiryPolicy.UNCHANGED,
                           access: Any = ExpiryPolicy.UNCHANGED) -> Any:
        """A view of this cache whose operations apply an expiry policy (TTLs in ms)."""
        context = self._client.protocol_context
        if context is not None and not context.is_expiry_policy_supported():
            raise NotSupportedByClusterError(
                "'ExpiryPolicy' API is not supported by the cluster")
        if not expiry_policy:
            expiry_policy = ExpiryPolicy(create=create, update=update, access=access)
        return type(self)(self._client, self._name, expiry_policy)

    # -- request building -------------------------------------------------------------------

    def _call(self, op: str, args: dict[str, Any] | None = None, *, idempotent: bool = False,
              error: type[Exception] = CacheError, expiry: bool = True) -> Call:
        full: dict[str, Any] = {"cache": self._name}
        if args:
            full.update(args)
        policy = self._cache_info.expiry_policy
        if expiry and policy is not None:
            full["expiry"] = policy.as_millis()
        tx = current_tx(self._client)
        hold = None
        if tx is not None:
            full["tx"] = tx.tx_id
            hold = tx.hold
        return Call(op, full, idempotent=idempotent, error=error, hold=hold)

    def _kv(self, op: str, *, idempotent: bool = False, decode: bool = False,
            **pairs: tuple[Any, Any]) -> Spec:
        args = yield from self._client._encode(pairs)
        raw = yield self._call(op, args, idempotent=idempotent)
        if decode:
            return (yield from self._client._decode(raw))
        return raw

    def _keys(self, op: str, keys: Iterable[Any], *, idempotent: bool = False) -> Spec:
        encoded = yield from self._client._encode_many(keys)
        return (yield self._call(op, {"keys": encoded}, idempotent=idempotent))

    def _settings_spec(self) -> Spec:
        if self._settings is None:
            raw = yield self._call("cache_config", idempotent=True, expiry=False)
            self._settings = self._client._codec.decode_config(raw or {})
        return self._settings

    # -- key-value --------------------------------------------------------------------------

    @shared
    def destroy(self) -> Spec:
        yield self._call("cache_destroy", expiry=False)

    @shared
    def get(self, key: Any, key_hint: Any = None) -> Spec:
        return (yield from self._kv("cache_get", idempotent=True, decode=True,
                                    key=(key, key_hint)))

    @shared
    def put(self, key: Any, value: Any, key_hint: Any = None, value_hint: Any = None) -> Spec:
        yield from self._kv("cache_put", key=(key, key_hint), value=(value, value_hint))

    @shared
    def get_all(self, keys: list[Any]) -> Spec:
        encoded = yield from self._client._encode_many(keys)
        raw = yield self._call("cache_get_all", {"keys": encoded}, idempotent=True)
        pairs = yield from self._client._decode(raw or [])
        return {key: value for key, value in pairs}

    @shared
    def put_all(self, pairs: dict[Any, Any]) -> Spec:
        items = list(pairs.items())
        flat = yield from self._client._encode_many([x for pair in items for x in pair])
        yield self._call("cache_put_all",
                         {"pairs": [[flat[i], flat[i + 1]] for i in range(0, len(flat), 2)]})

    @shared
    def replace(self, key: Any, value: Any, key_hint: Any = None, value_hint: Any = None) -> Spec:
        return (yield from self._kv("cache_replace", key=(key, key_hint),
                                    value=(value, value_hint)))

    @shared
    def clear(self, keys: list[Any] | None = None) -> Spec:
        if keys:
            yield from self._keys("cache_clear_keys", keys)
        else:
            yield self._call("cache_clear")

    @shared
    def clear_key(self, key: Any, key_hint: Any = None) -> Spec:
        yield from self._kv("cache_clear_key", key=(key, key_hint))

    @shared
    def clear_keys(self, keys: Iterable[Any]) -> Spec:
        yield from self._keys("cache_clear_keys", keys)

    @shared
    def contains_key(self, key: Any, key_hint: Any = None) -> Spec:
        return (yield from self._kv("cache_contains_key", idempotent=True, key=(key, key_hint)))

    @shared
    def contains_keys(self, keys: Iterable[Any]) -> Spec:
        return (yield from self._keys("cache_contains_keys", keys, idempotent=True))

    @shared
    def get_and_put(self, key: Any, value: Any, key_hint: Any = None,
                    value_hint: Any = None) -> Spec:
        return (yield from self._kv("cache_get_and_put", decode=True, key=(key, key_hint),
                                    value=(value, value_hint)))

    @shared
    def get_and_put_if_absent(self, key: Any, value: Any, key_hint: Any = None,
                              value_hint: Any = None) -> Spec:
        return (yield from self._kv("cache_get_and_put_if_absent", decode=True,
                                    key=(key, key_hint), value=(value, value_hint)))

    @shared
    def put_if_absent(self, key: Any, value: Any, key_hint: Any = None,
                      value_hint: Any = None) -> Spec:
        return (yield from self._kv("cache_put_if_absent", key=(key, key_hint),
                                    value=(value, value_hint)))

    @shared
    def get_and_remove(self, key: Any, key_hint: Any = None) -> Spec:
        return (yield from self._kv("cache_get_and_remove", decode=True, key=(key, key_hint)))

    @shared
    def get_and_replace(self, key: Any, value: Any, key_hint: Any = None,
                        value_hint: Any = None) -> Spec:
        return (yield from self._kv("cache_get_and_replace", decode=True, key=(key, key_hint),
                                    value=(value, value_hint)))

    @shared
    def remove_key(self, key: Any, key_hint: Any = None) -> Spec:
        return (yield from self._kv("cache_remove_key", key=(key, key_hint)))

    @shared
    def remove_keys(self, keys: list[Any]) -> Spec:
        yield from self._keys("cache_remove_keys", keys)

    @shared
    def remove_all(self) -> Spec:
        yield self._call("cache_remove_all")

    @shared
    def remove_if_equals(self, key: Any, sample: Any, key_hint: Any = None,
                         sample_hint: Any = None) -> Spec:
        return (yield from self._kv("cache_remove_if_equals", key=(key, key_hint),
                                    sample=(sample, sample_hint)))

    @shared
    def replace_if_equals(self, key: Any, sample: Any, value: Any, key_hint: Any = None,
                          sample_hint: Any = None, value_hint: Any = None) -> Spec:
        return (yield from self._kv("cache_replace_if_equals", key=(key, key_hint),
                                    sample=(sample, sample_hint), value=(value, value_hint)))

    @shared
    def get_size(self, peek_modes: Any = None) -> Spec:
        return (yield self._call("cache_get_size", {"peek_modes": _peek_modes(peek_modes)},
                                 idempotent=True))

    # -- cursors ----------------------------------------------------------------------------

    def _scan_args(self, page_size: int, partitions: int, local: bool) -> dict[str, Any]:
        return {"cache": self._name, "page_size": page_size, "partitions": partitions,
                "local": local}


BaseCache = CacheSpecs


#: Values that cross the wire unchanged both ways (wire.py's _AS_IS, minus what needs imports).
_PLAIN = frozenset({str, int, float, bool, type(None), bytes})


class Cache(CacheSpecs):
    """A named cache.  Creating one costs nothing; each method is one broker round trip."""

    def _run(self, spec: Spec) -> Any:
        return self._client._run(spec)

    # get and put skip the spec machinery in the common case (plain keys and values, no
    # transaction, no expiry policy): the same request and result, ~20 us less per call.

    def _plain(self) -> bool:
        return self._cache_info.expiry_policy is None and current_tx(self._client) is None

    def get(self, key: Any, key_hint: Any = None) -> Any:
        """The value stored under ``key``, or None."""
        if key_hint is None and type(key) in _PLAIN and self._plain():
            raw = self._client._execute(
                Call("cache_get", {"cache": self._name, "key": key}, idempotent=True))
            if type(raw) in _PLAIN:
                return raw
            return self._run(self._client._decode(raw))
        return self._run(CacheSpecs.get(self, key, key_hint))

    def put(self, key: Any, value: Any, key_hint: Any = None, value_hint: Any = None) -> None:
        """Store ``value`` under ``key``."""
        if (key_hint is None and value_hint is None and type(key) in _PLAIN
                and type(value) in _PLAIN and self._plain()):
            self._client._execute(
                Call("cache_put", {"cache": self._name, "key": key, "value": value}))
            return
        self._run(CacheSpecs.put(self, key, value, key_hint, value_hint))

    @property
    def settings(self) -> dict[int, Any]:
        """Lazy cache settings: {PROP_* code: value}."""
        settings: dict[int, Any] = self._run(self._settings_spec())
        return settings

    def scan(self, page_size: int = 1, partitions: int = -1, local: bool = False) -> ScanCursor:
        """All key-value pairs, paged; the cursor runs the query now."""
        from .cursors import ScanCursor

        return ScanCursor(self._client, self._scan_args(page_size, partitions, local))

    def select_row(self, query_str: str, page_size: int = 1, query_args: list[Any] | None = None,
                   distributed_joins: bool = False, replicated_only: bool = False,
                   local: bool = False, timeout: int = 0) -> SqlCursor:
        """The deprecated SQL query over this cache's value type, as (key, value) pairs."""
        import warnings

        from .cursors import SqlCursor

        warnings.warn("Deprecated since 1.2.0. The reason: This API is deprecated and will be "
                      "removed in the following major release. Use sql_fields instead",
                      DeprecationWarning, stacklevel=2)
        type_name = self.settings[PROP_QUERY_ENTITIES][0]["value_type_name"]
        if not type_name:
            raise SQLError("Value type is unknown")
        args = {"cache": self._name, "table": type_name, "query": query_str,
                "page_size": page_size, "distributed_joins": distributed_joins,
                "replicated_only": replicated_only, "local": local, "timeout": timeout}
        return SqlCursor(self._client, args, query_args)


    def query_continuous(self, *, page_size: int = 1, time_interval: int = 0,
                         include_expired: bool = False,
                         listener: Callable[[Any], None] | None = None,
                         initial_query: ScanQuery | None = None,
                         remote_filter: JavaFilter | None = None) -> ContinuousQuery:
        """Subscribe to this cache's changes (Ignite's ContinuousQuery; the broker shares one
        server query among its workers).  Iterate the result, or give ``listener``: a thread
        calls it with each event.  ``page_size`` events are collected on the node before they
        are sent, or fewer after ``time_interval`` ms (0: no time limit); close it (or use
        ``with``) to unsubscribe.  ``initial_query`` (a ScanQuery) reads the cache once the
        subscription runs: its cursor is the result's ``initial``.  ``remote_filter`` (a
        JavaFilter) filters events on the nodes."""
        from .continuous import ContinuousQuery

        return ContinuousQuery(self._client, self._name, page_size=page_size,
                               time_interval=time_interval, include_expired=include_expired,
                               listener=listener, initial_query=initial_query,
                               remote_filter=remote_filter)


bind_sync(Cache)
