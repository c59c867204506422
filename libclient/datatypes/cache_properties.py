"""pyignite's ``pyignite.datatypes.cache_properties``: one class per cache configuration
property (``PropBackupsNumber`` ...), naming its ``PROP_*`` code and the hint its value has,
and ``prop_map(code)``.  The broker encodes cache configurations, so these only describe."""

from __future__ import annotations

from ._hints import Bool, Int, Long, String
from .cache_config import (
    CacheAtomicityMode,
    CacheKeyConfiguration,
    CacheMode,
    PartitionLossPolicy,
    QueryEntities,
    RebalanceMode,
    WriteSynchronizationMode,
)
from .expiry_policy import ExpiryPolicy
from .prop_codes import (
    PROP_BACKUPS_NUMBER,
    PROP_CACHE_ATOMICITY_MODE,
    PROP_CACHE_KEY_CONFIGURATION,
    PROP_CACHE_MODE,
    PROP_COPY_ON_READ,
    PROP_DATA_REGION_NAME,
    PROP_DEFAULT_LOCK_TIMEOUT,
    PROP_EAGER_TTL,
    PROP_EXPIRY_POLICY,
    PROP_GROUP_NAME,
    PROP_IS_ONHEAP_CACHE_ENABLED,
    PROP_MAX_CONCURRENT_ASYNC_OPERATIONS,
    PROP_MAX_QUERY_ITERATORS,
    PROP_NAME,
    PROP_PARTITION_LOSS_POLICY,
    PROP_QUERY_DETAIL_METRIC_SIZE,
    PROP_QUERY_ENTITIES,
    PROP_QUERY_PARALLELISM,
    PROP_READ_FROM_BACKUP,
    PROP_REBALANCE_BATCH_SIZE,
    PROP_REBALANCE_BATCHES_PREFETCH_COUNT,
    PROP_REBALANCE_DELAY,
    PROP_REBALANCE_MODE,
    PROP_REBALANCE_ORDER,
    PROP_REBALANCE_THROTTLE,
    PROP_REBALANCE_TIMEOUT,
    PROP_SQL_ESCAPE_ALL,
    PROP_SQL_INDEX_INLINE_MAX_SIZE,
    PROP_SQL_SCHEMA,
    PROP_STATISTICS_ENABLED,
    PROP_WRITE_SYNCHRONIZATION_MODE,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "AnyProperty",
    "PropBackupsNumber",
    "PropCacheAtomicityMode",
    "PropCacheKeyConfiguration",
    "PropCacheMode",
    "PropCopyOnRead",
    "PropDataRegionName",
    "PropDefaultLockTimeout",
    "PropEagerTTL",
    "PropExpiryPolicy",
    "PropGroupName",
    "PropIsOnheapCacheEnabled",
    "PropMaxConcurrentAsyncOperation",
    "PropMaxQueryIterators",
    "PropName",
    "PropPartitionLossPolicy",
    "PropQueryDetailMetricSize",
    "PropQueryEntities",
    "PropQueryParallelism",
    "PropReadFromBackup",
    "PropRebalanceBatchSize",
    "PropRebalanceBatchesPrefetchCount",
    "PropRebalanceDelay",
    "PropRebalanceMode",
    "PropRebalanceOrder",
    "PropRebalanceThrottle",
    "PropRebalanceTimeout",
    "PropSQLIndexInlineMaxSize",
    "PropSQLSchema",
    "PropSqlEscapeAll",
    "PropStatisticsEnabled",
    "PropWriteSynchronizationMode",
    "prop_map",
]


def prop_map(code: int) -> type[PropBase]:
    """The property class of a ``PROP_*`` code (KeyError for an unknown one, as pyignite)."""
    return _BY_CODE[code]


class PropBase:
    prop_code: int | None = None
    prop_data_class: Any = None


class TimeoutProp(PropBase):
    prop_data_class = Long


class PropName(PropBase):
    prop_code = PROP_NAME
    prop_data_class = String


class PropCacheMode(PropBase):
    prop_code = PROP_CACHE_MODE
    prop_data_class = CacheMode


class PropCacheAtomicityMode(PropBase):
    prop_code = PROP_CACHE_ATOMICITY_MODE
    prop_data_class = CacheAtomicityMode


class PropBackupsNumber(PropBase):
    prop_code = PROP_BACKUPS_NUMBER
    prop_data_class = Int


class PropWriteSynchronizationMode(PropBase):
    prop_code = PROP_WRITE_SYNCHRONIZATION_MODE
    prop_data_class = WriteSynchronizationMode


class PropCopyOnRead(PropBase):
    prop_code = PROP_COPY_ON_READ
    prop_data_class = Bool


class PropReadFromBackup(PropBase):
    prop_code = PROP_READ_FROM_BACKUP
    prop_data_class = Bool


class PropDataRegionName(PropBase):
    prop_code = PROP_DATA_REGION_NAME
    prop_data_class = String


class PropIsOnheapCacheEnabled(PropBase):
    prop_code = PROP_IS_ONHEAP_CACHE_ENABLED
    prop_data_class = Bool


class PropQueryEntities(PropBase):
    prop_code = PROP_QUERY_ENTITIES
    prop_data_class = QueryEntities


class PropQueryParallelism(PropBase):
    prop_code = PROP_QUERY_PARALLELISM
    prop_data_class = Int


class PropQueryDetailMetricSize(PropBase):
    prop_code = PROP_QUERY_DETAIL_METRIC_SIZE
    prop_data_class = Int


class PropSQLSchema(PropBase):
    prop_code = PROP_SQL_SCHEMA
    prop_data_class = String


class PropSQLIndexInlineMaxSize(PropBase):
    prop_code = PROP_SQL_INDEX_INLINE_MAX_SIZE
    prop_data_class = Int


class PropSqlEscapeAll(PropBase):
    prop_code = PROP_SQL_ESCAPE_ALL
    prop_data_class = Bool


class PropMaxQueryIterators(PropBase):
    prop_code = PROP_MAX_QUERY_ITERATORS
    prop_data_class = Int


class PropRebalanceMode(PropBase):
    prop_code = PROP_REBALANCE_MODE
    prop_data_class = RebalanceMode


class PropRebalanceDelay(PropBase):
    prop_code = PROP_REBALANCE_DELAY
    prop_data_class = Long


class PropRebalanceTimeout(TimeoutProp):
    prop_code = PROP_REBALANCE_TIMEOUT


class PropRebalanceBatchSize(PropBase):
    prop_code = PROP_REBALANCE_BATCH_SIZE
    prop_data_class = Int


class PropRebalanceBatchesPrefetchCount(PropBase):
    prop_code = PROP_REBALANCE_BATCHES_PREFETCH_COUNT
    prop_data_class = Long


class PropRebalanceOrder(PropBase):
    prop_code = PROP_REBALANCE_ORDER
    prop_data_class = Int


class PropRebalanceThrottle(PropBase):
    prop_code = PROP_REBALANCE_THROTTLE
    prop_data_class = Long


class PropGroupName(PropBase):
    prop_code = PROP_GROUP_NAME
    prop_data_class = String


class PropCacheKeyConfiguration(PropBase):
    prop_code = PROP_CACHE_KEY_CONFIGURATION
    prop_data_class = CacheKeyConfiguration


class PropDefaultLockTimeout(TimeoutProp):
    prop_code = PROP_DEFAULT_LOCK_TIMEOUT


class PropMaxConcurrentAsyncOperation(PropBase):
    prop_code = PROP_MAX_CONCURRENT_ASYNC_OPERATIONS
    prop_data_class = Int


class PropPartitionLossPolicy(PropBase):
    prop_code = PROP_PARTITION_LOSS_POLICY
    prop_data_class = PartitionLossPolicy


class PropEagerTTL(PropBase):
    prop_code = PROP_EAGER_TTL
    prop_data_class = Bool


class PropStatisticsEnabled(PropBase):
    prop_code = PROP_STATISTICS_ENABLED
    prop_data_class = Bool


class PropExpiryPolicy(PropBase):
    prop_code = PROP_EXPIRY_POLICY
    prop_data_class = ExpiryPolicy


class AnyProperty(PropBase):
    """A property of any code (pyignite reads settings with it)."""


_BY_CODE: dict[int, type[PropBase]] = {
    cls.prop_code: cls for cls in PropBase.__subclasses__() + TimeoutProp.__subclasses__()
    if cls.prop_code is not None
}
