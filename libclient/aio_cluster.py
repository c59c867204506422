"""``AioCluster``: the asyncio flavour of ``Cluster`` (pyignite's ``pyignite.aio_cluster``)."""

from __future__ import annotations

from .calls import bind_async
from .cluster import ClusterSpecs

__all__ = ["AioCluster"]


@bind_async
class AioCluster(ClusterSpecs):
    """Ignite cluster facade (``AioClient.get_cluster()``)."""
