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

__all__ = ["AioCache"]


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


bind_async(AioCache)
