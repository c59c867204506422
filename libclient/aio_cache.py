"""``AioCache``: the asyncio flavour of ``Cache`` (pyignite's ``pyignite.aio_cache``), made from
the same specs; every method is a coroutine taking pyignite's extra ``timeout`` (seconds)."""

from __future__ import annotations

from .cache import CacheSpecs
from .calls import bind_async
from .cursors import AioScanCursor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .cache import Spec
    from .continuous import AioContinuousQuery, JavaFilter, ScanQuery

__all__ = ["AioCache", "create_cache", "get_cache", "get_or_create_cache"]


# pyignite's module-level helpers: the client coroutines of the same names.

async def get_cache(client: Any, settings: Any) -> AioCache:
    """A cache object without asking the cluster (only a name is allowed)."""
    cache: AioCache = await client.get_cache(settings)
    return cache


async def create_cache(client: Any, settings: Any) -> AioCache:
    """Create a cache; CacheCreationError if it exists."""
    cache: AioCache = await client.create_cache(settings)
    return cache


async def get_or_create_cache(client: Any, settings: Any) -> AioCache:
    cache: AioCache = await client.get_or_create_cache(settings)
    return cache


class AioCache(CacheSpecs):
    async def _arun(self, spec: Spec, timeout: float = 0) -> Any:
        return await self._client._arun(spec, timeout)

    async def settings(self, timeout: float = 0) -> dict[int, Any]:
        """Lazy cache settings: {PROP_* code: value}."""
        settings: dict[int, Any] = await self._arun(self._settings_spec(), timeout)
        return settings

    def scan(self, page_size: int = 1, partitions: int = -1, local: bool = False,
             timeout: float = 0) -> AioScanCursor:
        """All key-value pairs, paged; runs on ``async with`` or ``await``."""
        return AioScanCursor(self._client, self._scan_args(page_size, partitions, local))


    def query_continuous(self, *, page_size: int = 1, time_interval: int = 0,
                         include_expired: bool = False, initial_query: ScanQuery | None = None,
                         remote_filter: JavaFilter | None = None) -> AioContinuousQuery:
        """Subscribe to this cache's changes (see Cache.query_continuous): ``async with await
        cache.query_continuous() as events: async for event in events``; with
        ``initial_query``, ``async for key, value in events.initial`` first."""
        from .continuous import AioContinuousQuery

        return AioContinuousQuery(self._client, self._name, page_size=page_size,
                                  time_interval=time_interval, include_expired=include_expired,
                                  initial_query=initial_query, remote_filter=remote_filter)


bind_async(AioCache)
