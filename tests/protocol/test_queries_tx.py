"""QUERY_SQL (2002, ``select_row``) carries a tx id in its prefix only with feature bit 18,
like SQL fields and scan (tests/protocol/test_queries.py)."""

from __future__ import annotations

import struct

import pytest

from protocol import LocalProtocolError, queries
from protocol.features import Feature

BIT18 = frozenset({Feature.TX_AWARE_QUERIES})


def test_old_sql_tx_needs_bit18() -> None:
    plain = queries.sql(42, "Person", "age > ?", args=[3])
    body = queries.sql(42, "Person", "age > ?", args=[3], tx_id=7, features=BIT18)
    assert body == struct.pack("<ibi", 42, 2, 7) + plain[5:]  # TRANSACTIONAL flag + i32 tx id
    with pytest.raises(LocalProtocolError, match="feature bit 18"):
        queries.sql(42, "Person", "age > ?", tx_id=7, features={Feature.HEARTBEAT})
