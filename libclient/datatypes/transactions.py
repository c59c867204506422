"""Transaction concurrency and isolation levels (``pyignite.datatypes.transactions``)."""

from enum import IntEnum

__all__ = ["TransactionConcurrency", "TransactionIsolation"]


class TransactionConcurrency(IntEnum):
    OPTIMISTIC = 0
    PESSIMISTIC = 1


class TransactionIsolation(IntEnum):
    READ_COMMITTED = 0
    REPEATABLE_READ = 1
    SERIALIZABLE = 2
