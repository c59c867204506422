"""``Client``: pyignite's client API, served by the local broker instead of direct node
connections.  Connection-level settings (addresses, TLS, credentials) belong to the broker."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from protocol.ipc import default_endpoint

from .cache import Cache
from .exceptions import CacheError, ParameterError, ReconnectError
from .transport import Transport

#: pyignite keyword arguments that configure node connections.  The broker owns those
#: connections, so the stub refuses them rather than silently ignoring them, and it never
#: carries secrets.
_BROKER_OWNED_KWARGS = frozenset({
    "use_ssl", "ssl_version", "ssl_ciphers", "ssl_cert_reqs", "ssl_keyfile", "ssl_keyfile_password",
    "ssl_certfile", "ssl_ca_certfile", "username", "password",
})
_DEFAULT_PORT = 10800


def _settings_name(settings: Any) -> str:
    if isinstance(settings, str):
        return settings
    if isinstance(settings, dict) and isinstance(settings.get(0), str) and len(settings) == 1:
        return settings[0]  # {PROP_NAME: name}
    raise ParameterError("cache settings must be a cache name (other properties: not yet)")


def _addresses(args: tuple[Any, ...]) -> list[str]:
    """pyignite's connect() forms: (), (host, port), ([(host, port), ...])."""
    if not args:
        return []
    if len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], int):
        return [f"{args[0]}:{args[1]}"]
    if len(args) == 1 and isinstance(args[0], Iterable) and not isinstance(args[0], str):
        nodes = list(args[0])
        if all(isinstance(n, tuple | list) and len(n) == 2 for n in nodes):
            return [f"{h}:{p}" for h, p in nodes]
    raise ReconnectError("connect() takes no arguments, (host, port), or a list of (host, port)")


class Client:
    """A pyignite-compatible client that talks to the ignite-broker daemon."""

    def __init__(
        self,
        compact_footer: bool | None = None,
        partition_aware: bool = True,
        event_listeners: Any = None,
        *,
        broker: str | None = None,
        **kwargs: Any,
    ) -> None:
        refused = sorted(_BROKER_OWNED_KWARGS & kwargs.keys())
        if refused:
            raise ParameterError(
                f"{', '.join(refused)}: connection security is configured in the broker "
                "(broker.toml), not in workers; remove these arguments")
        unknown = sorted(kwargs.keys() - {"timeout", "handshake_timeout"})
        if unknown:
            raise ParameterError(f"Unexpected parameter for connection initialization: {unknown}")
        self._compact_footer = compact_footer
        self._partition_aware = partition_aware
        self._endpoint = broker or default_endpoint(os.environ, os.getuid())
        self._timeout = float(kwargs.get("timeout") or 30.0)
        self._handshake_timeout = float(kwargs.get("handshake_timeout") or 10.0)
        self._transport: Transport | None = None
        self.broker_info: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<libclient.Client broker={self._endpoint}>"

    @property
    def broker(self) -> str:
        return self._endpoint

    def connect(self, *args: Any) -> Client:
        """Reach the broker and check it serves the nodes named (if any)."""
        nodes = _addresses(args)
        if self._transport is None:
            self._transport = Transport(self._endpoint, timeout=self._timeout)
        self.broker_info = self._transport.call(
            "hello", {"nodes": nodes}, timeout=self._handshake_timeout)
        return self

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, op: str, args: dict[str, Any], *, idempotent: bool = True) -> Any:
        transport = self._transport
        if transport is None:
            raise ReconnectError("the client is not connected; call connect() first")
        return transport.call(op, args, idempotent=idempotent)

    def get_cache(self, settings: Any) -> Cache:
        return Cache(self, _settings_name(settings))

    def get_or_create_cache(self, settings: Any) -> Cache:
        name = _settings_name(settings)
        self._call("cache_get_or_create", {"name": name})
        return Cache(self, name)

    def get_cache_names(self) -> list[str]:
        names = self._call("cache_names", {})
        if not isinstance(names, list):
            raise CacheError("the broker returned a malformed cache list")
        return names
