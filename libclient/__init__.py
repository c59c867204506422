"""libclient: a drop-in, fork-safe, thread-safe pyignite-compatible stub for ignite-broker.

``from libclient import Client`` replaces ``from pyignite import Client``.
"""

from .cache import Cache
from .client import Client

__all__ = ["Cache", "Client"]
