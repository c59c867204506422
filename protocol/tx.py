"""Body builders and parsers of the transaction ops TX_START (4000) and TX_END (4001), >= 1.5.0.

A tx id only means something on the connection that started it; key/value ops join it
through the ``tx_id`` argument of their builders (prefix flag 0x02). Closing the
connection rolls back its open transactions.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from . import _checks as check
from ._body import BodyReader, pack, parse_empty, write_string
from .binary.codec import Buffer

__all__ = [
    "TX_CONCURRENCIES",
    "TX_ISOLATIONS",
    "TxConcurrency",
    "TxIsolation",
    "parse_tx_end",
    "parse_tx_start",
    "tx_end",
    "tx_start",
]

_TX_START = struct.Struct("<bbq")  # concurrency, isolation, timeout ms
_TX_END = struct.Struct("<i?")  # tx id, committed


class TxConcurrency(IntEnum):
    OPTIMISTIC = 0
    PESSIMISTIC = 1


class TxIsolation(IntEnum):
    READ_COMMITTED = 0
    REPEATABLE_READ = 1
    SERIALIZABLE = 2


TX_CONCURRENCIES = frozenset(TxConcurrency)
TX_ISOLATIONS = frozenset(TxIsolation)


def tx_start(
    concurrency: int = TxConcurrency.PESSIMISTIC,
    isolation: int = TxIsolation.REPEATABLE_READ,
    timeout: int = 0,
    label: str | None = None,
) -> bytes:
    """Body of TX_START: ``i8 concurrency | i8 isolation | i64 timeout ms | str label``.

    The defaults are Ignite's (PESSIMISTIC, REPEATABLE_READ, no timeout, no label); a
    negative timeout is refused, as the node would.
    """
    buf = bytearray(pack(
        _TX_START, check.one_of(concurrency, TX_CONCURRENCIES, "tx concurrency"),
        check.one_of(isolation, TX_ISOLATIONS, "tx isolation"),
        check.integer(timeout, "tx timeout (ms)", 0, check.I64[1]),
    ))
    write_string(buf, label, "label")
    return bytes(buf)


def parse_tx_start(body: Buffer) -> int:
    """``i32 tx id`` -> the id (a per-connection counter starting at 1)."""
    reader = BodyReader(body)
    tx_id = reader.i32()
    reader.finish("the tx id")
    return tx_id


def tx_end(tx_id: int, committed: bool) -> bytes:
    """Body of TX_END: ``i32 tx id | bool committed`` (False rolls back).

    Committing an unknown tx fails with status 1021; rolling one back succeeds silently.
    """
    return pack(_TX_END, check.i32(tx_id, "tx id"), check.flag(committed, "committed"))


parse_tx_end = parse_empty
