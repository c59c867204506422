"""``Cluster``/``AioCluster``: cluster state (pyignite's API) and, beyond pyignite, the WAL
switches the thin-client protocol offers (enable_wal/disable_wal/is_wal_enabled per cache)."""

from __future__ import annotations

from .calls import Call, bind_sync, shared
from .client_base import cache_name_of
from .exceptions import ClusterError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any

    Spec = Generator[Call, Any, Any]



class ClusterSpecs:
    def __init__(self, client: Any) -> None:
        self._client = client

    def _run(self, spec: Spec) -> Any:
        return self._client._run(spec)

    async def _arun(self, spec: Spec, timeout: float = 0) -> Any:
        return await self._client._arun(spec, timeout)

    @shared
    def get_state(self) -> Spec:
        """The cluster state: 0 inactive, 1 active, 2 active read-only (ClusterState)."""
        return (yield Call("cluster_get_state", idempotent=True, error=ClusterError))

    @shared
    def set_state(self, state: int) -> Spec:
        """Change the cluster state.  Deactivation clears in-memory caches."""
        yield Call("cluster_set_state", {"state": int(state)}, idempotent=True,
                   error=ClusterError)

    def _wal(self, cache: Any, enable: bool | None) -> Spec:
        return (yield Call("cluster_wal", {"cache": cache_name_of(cache), "enable": enable},
                           idempotent=enable is None, error=ClusterError,
                           op_code=5003 if enable is None else 5002))

    @shared
    def enable_wal(self, cache: Any) -> Spec:
        """Turn the write-ahead log of a persistent cache on; True if the state changed."""
        return (yield from self._wal(cache, True))

    @shared
    def disable_wal(self, cache: Any) -> Spec:
        """Turn the write-ahead log of a persistent cache off; True if the state changed."""
        return (yield from self._wal(cache, False))

    @shared
    def is_wal_enabled(self, cache: Any) -> Spec:
        return (yield from self._wal(cache, None))


@bind_sync
class Cluster(ClusterSpecs):
    """Ignite cluster facade (``Client.get_cluster()``)."""
