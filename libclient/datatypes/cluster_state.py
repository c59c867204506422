"""``ClusterState`` (``pyignite.datatypes.cluster_state``)."""

from enum import IntEnum

__all__ = ["ClusterState"]


class ClusterState(IntEnum):
    #: Cluster deactivated. Cache operations aren't allowed.
    INACTIVE = 0
    #: Cluster activated. All cache operations are allowed.
    ACTIVE = 1
    #: Cluster activated, read-only: cache writes are refused.
    ACTIVE_READ_ONLY = 2
