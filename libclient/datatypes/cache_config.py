"""Cache configuration enums (``pyignite.datatypes.cache_config``): plain int constants on hint
classes, exactly as pyignite has them (not Python enums)."""

from ._hints import Byte, Int

__all__ = [
    "CacheAtomicityMode",
    "CacheMode",
    "IndexType",
    "PartitionLossPolicy",
    "RebalanceMode",
    "WriteSynchronizationMode",
]


class CacheMode(Int):
    LOCAL = 0
    REPLICATED = 1
    PARTITIONED = 2


class PartitionLossPolicy(Int):
    READ_ONLY_SAFE = 0
    READ_ONLY_ALL = 1
    READ_WRITE_SAFE = 2
    READ_WRITE_ALL = 3
    IGNORE = 4


class RebalanceMode(Int):
    SYNC = 0
    ASYNC = 1
    NONE = 2


class WriteSynchronizationMode(Int):
    FULL_SYNC = 0
    FULL_ASYNC = 1
    PRIMARY_SYNC = 2


class IndexType(Byte):
    SORTED = 0
    FULLTEXT = 1
    GEOSPATIAL = 2


class CacheAtomicityMode(Int):
    TRANSACTIONAL = 0
    ATOMIC = 1
