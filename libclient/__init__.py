"""libclient: a drop-in, fork-safe, thread-safe pyignite-compatible stub for ignite-broker.

``from libclient import Client`` replaces ``from pyignite import Client`` (``AioClient`` and
``GenericObjectMeta`` too).  Importing it is cheap: pyzmq, asyncio and the IPC schema load on
first use.
"""

from __future__ import annotations

from protocol import __version__ as __version__

from .binary import GenericObjectMeta
from .cache import Cache
from .client import Client

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["AioCache", "AioClient", "Cache", "Client", "GenericObjectMeta"]


def __getattr__(name: str) -> Any:
    # The asyncio flavour imports asyncio (zmq.asyncio too for ZeroMQ endpoints): on demand.
    if name == "AioClient":
        from .aio_client import AioClient

        return AioClient
    if name == "AioCache":
        from .aio_cache import AioCache

        return AioCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
