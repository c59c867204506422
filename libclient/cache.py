"""``Cache``: pyignite's key-value API on one named cache, answered through the broker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from protocol.hashing import cache_id
from protocol.ipc import Typed

from .exceptions import ParameterError

if TYPE_CHECKING:
    from .client import Client


def typed(value: Any, hint: Any) -> Any:
    """Wrap a value with its pyignite type hint for the broker (no hint: pyignite's mapping)."""
    if hint is None:
        return value
    type_code = getattr(hint, "type_code", None)
    if not isinstance(type_code, int):
        raise ParameterError(f"{hint!r} is not a type hint from libclient.datatypes")
    return Typed(type_code, value)


class Cache:
    """A named cache.  Creating one costs nothing; every method is one broker round trip."""

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self._name = name
        self._cache_id = cache_id(name)

    def __repr__(self) -> str:
        return f"<Cache {self._name!r}>"

    @property
    def name(self) -> str:
        return self._name

    @property
    def cache_id(self) -> int:
        return self._cache_id

    @property
    def client(self) -> Client:
        return self._client

    def get(self, key: Any, key_hint: Any = None) -> Any:
        return self._client._call("cache_get", {"cache": self._name, "key": typed(key, key_hint)})

    def put(self, key: Any, value: Any, key_hint: Any = None, value_hint: Any = None) -> None:
        args = {"cache": self._name, "key": typed(key, key_hint),
                "value": typed(value, value_hint)}
        self._client._call("cache_put", args, idempotent=False)
