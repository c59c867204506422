"""The bounds table (broker/bounds.py), the per-connection counts of pinned transactions and
cursors (broker/workers.py) and the pool's choice of a connection with room (no I/O)."""

from __future__ import annotations

import pytest

from broker import bounds
from broker.config import load
from broker.errors import BadRequest
from broker.limits import Limits
from broker.pool import NodePool
from broker.workers import Cursor, Pinned, Transaction, Workers
from protocol import ConnectionConfig, tx
from protocol.binary import TypeCode
from protocol.binary.values import Typed
from protocol.cacheconfig import Prop

LIMITS = Limits(max_page_size=100, max_keys_per_request=3)


class Conn:
    """Stands in for a NodeConnection where only identity and is_open matter."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_open = True

    def __repr__(self) -> str:
        return f"<Conn {self.name}>"


def test_a_page_size_above_the_bound_is_clamped_and_zero_refused():
    assert bounds.number({"page_size": 2**31 - 1}, "page_size", 1024, LIMITS) == 100
    assert bounds.number({"page_size": 7}, "page_size", 1024, LIMITS) == 7
    assert bounds.number({}, "page_size", 1024, LIMITS) == 1024  # the default, as given
    for bad in (0, -1):
        with pytest.raises(BadRequest, match=r"'page_size' is .*allowed 1\.\.100"):
            bounds.number({"page_size": bad}, "page_size", 1024, LIMITS)


@pytest.mark.parametrize("name, bound, value", [
    ("timeout", "query.timeout", -1), ("timeout", "query.timeout", 2**31),
    ("timeout", "tx.timeout", -5), ("partitions", "partitions", 65000),
    ("partitions", "partitions", -2), ("max_rows", "max_rows", 2**40),
])
def test_numbers_outside_their_range_are_refused_naming_the_argument(name, bound, value):
    with pytest.raises(BadRequest, match=f"'{name}' is {value}: allowed"):
        bounds.number({name: value}, name, 0, LIMITS, bound)


def test_partitions_end_where_ignites_max_partitions_count_does():
    """One source (protocol.limits): Ignite caps a cache at 65000 partitions, numbered
    0..64999, and the codec and the broker's bound agree with it."""
    from protocol import queries
    from protocol.limits import MAX_PARTITIONS_COUNT

    assert MAX_PARTITIONS_COUNT == 65000
    assert bounds.MAX_PARTITION == MAX_PARTITIONS_COUNT - 1
    assert bounds.number({"partitions": 64999}, "partitions", -1, LIMITS) == 64999
    assert bounds.number({"partitions": -1}, "partitions", -1, LIMITS) == -1
    with pytest.raises(BadRequest, match=r"'partitions' is 65000: allowed -1\.\.64999"):
        bounds.number({"partitions": 65000}, "partitions", -1, LIMITS)
    assert queries.scan(1, partition=64999)  # what the bound lets through, the codec encodes


def test_numbers_must_be_ints():
    with pytest.raises(BadRequest, match="must be an int"):
        bounds.number({"page_size": True}, "page_size", 1024, LIMITS)


@pytest.mark.parametrize("expiry", [[-5, -5, -5], [0, -3, 0], [2**62, 0, 0], [1, 2], "x",
                                    [1.5, 0, 0]])
def test_expiry_outside_ignites_values_is_refused(expiry):
    with pytest.raises(BadRequest, match="expiry"):
        bounds.expiry(expiry)


def test_expiry_special_values_pass():
    assert bounds.expiry([-2, -1, 0]) == (-2, -1, 0)


def test_counts_and_texts():
    assert bounds.count([1, 2, 3], "keys", LIMITS) == [1, 2, 3]
    with pytest.raises(BadRequest, match=r"'keys' has 4 items: at most 3"):
        bounds.count([1, 2, 3, 4], "keys", LIMITS)
    with pytest.raises(BadRequest, match="'query' is 1048577 characters"):
        bounds.text("x" * (1 << 20 | 1), "query", "query")
    with pytest.raises(BadRequest, match="UTF-8 bytes"):
        bounds.text("é" * 121, "name", "cache_name")  # 242 bytes
    assert bounds.text("é" * 120, "name", "cache_name") == "é" * 120
    assert bounds.optional_text(None, "schema") is None
    assert bounds.optional_text("PUBLIC", "schema") == "PUBLIC"
    with pytest.raises(BadRequest, match=r"'schema' is 1025 characters long: allowed 0\.\.1024"):
        bounds.optional_text("s" * 1025, "schema")


def test_enums_come_from_the_protocol():
    assert bounds.member({}, "isolation", tx.TxIsolation, tx.TxIsolation.REPEATABLE_READ) == 1
    with pytest.raises(BadRequest, match=r"'isolation' is 7: allowed 0 \(READ_COMMITTED\)"):
        bounds.member({"isolation": 7}, "isolation", tx.TxIsolation, 1)
    with pytest.raises(BadRequest, match="missing argument 'state'"):
        bounds.member({}, "state", tx.TxIsolation, None)


def test_cache_config_numbers_and_names():
    bounds.cache_config({Prop.NAME: "c", Prop.BACKUPS_NUMBER: 1, Prop.EXPIRY_POLICY: [-1, -2, 0]})
    with pytest.raises(BadRequest, match=r"201 \(QUERY_PARALLELISM\) is 2147483647"):
        bounds.cache_config({Prop.NAME: "c", Prop.QUERY_PARALLELISM: 2**31 - 1})
    with pytest.raises(BadRequest, match="expiry"):
        bounds.cache_config({Prop.NAME: "c", Prop.EXPIRY_POLICY: {"create": -5}})
    with pytest.raises(BadRequest, match="UTF-8 bytes"):
        bounds.cache_config({Prop.NAME: "n" * 241})


def test_only_an_empty_byte_array_is_stored_as_one():
    empty = (b"", Typed(TypeCode.BYTE_ARRAY, b""), Typed(TypeCode.BYTE_ARRAY, []))
    assert all(bounds.is_empty_bytes(value) for value in empty)
    others = (b"x", "", [], None, Typed(TypeCode.BYTE_ARRAY, b"x"), Typed(TypeCode.STRING, ""),
              Typed(TypeCode.SHORT_ARRAY, []), bytearray())
    assert not any(bounds.is_empty_bytes(value) for value in others)


def test_an_empty_byte_array_under_a_key_longer_than_a_small_page_is_refused():
    bounds.stored_entry(bounds.EMPTY_BYTES_KEY_MAX)
    with pytest.raises(BadRequest, match=r"empty byte array .* 513 encoded bytes .* halts"):
        bounds.stored_entry(bounds.EMPTY_BYTES_KEY_MAX + 1)


def test_the_settings_reach_the_limits():
    cfg = load(None, {"limits.max_page_size": 5, "limits.max_cursors_per_worker": 2})
    assert cfg.limits_max_page_size == 5
    assert {name for name in bounds.BOUND_SETTINGS} <= set(Limits.__dataclass_fields__)


def test_the_settings_and_the_limits_have_one_default():
    defaults = load(None, {})
    assert {name: defaults.get(f"limits.{name}") for name in bounds.BOUND_SETTINGS} == {
        name: getattr(Limits(), name) for name in bounds.BOUND_SETTINGS}


# -- pinned transactions and cursors ----------------------------------------------------------


def test_pinned_tables_keep_the_per_connection_counts_right():
    workers = Workers()
    a, b = Conn("a"), Conn("b")
    w1, w2 = workers.seen(b"w1", 0.0), workers.seen(b"w2", 0.0)
    w1.transactions[1] = Transaction(1, a, 1, None)
    w1.transactions[2] = Transaction(2, b, 2, None)
    w2.transactions[3] = Transaction(3, a, 3, None)
    assert workers.tx_held == {a: 2, b: 1}
    del w1.transactions[1]
    assert workers.tx_held == {a: 1, b: 1}
    w2.transactions.clear()  # as the janitor releases a silent worker
    assert workers.tx_held == {b: 1}
    assert w1.transactions.pop(2) is not None and w1.transactions.pop(2, None) is None
    assert workers.tx_held == {}
    with pytest.raises(TypeError):
        w1.transactions.update({})


def test_what_a_stopping_broker_still_serves_a_worker_with_an_open_transaction():
    workers = Workers()
    a = Conn("a")
    w1, w2 = workers.seen(b"w1", 0.0), workers.seen(b"w2", 0.0)
    w1.transactions[4] = Transaction(4, a, 40, None)
    w1.cursors[5] = Cursor(5, a, 50, "scan")
    w2.cursors[6] = Cursor(6, a, 60, "sql")
    w3 = workers.seen(b"w3", 0.0)
    w3.in_flight = 1  # a tx_start, maybe
    assert workers.unfinished() == {b"w1", b"w3"}
    assert workers.belongs_to_open(b"w1", {"tx": 4, "key": 1})
    assert workers.belongs_to_open(b"w1", {"cursor": 5})
    assert not workers.belongs_to_open(b"w1", {"key": 1})  # new work
    assert not workers.belongs_to_open(b"w1", {"tx": 9})  # not its transaction
    assert not workers.belongs_to_open(b"w1", {"tx": True, "cursor": "5"})
    assert not workers.belongs_to_open(b"w2", {"tx": 4})
    assert not workers.belongs_to_open(b"gone", {"tx": 4})
    assert not workers.finished(b"w1")
    del w1.transactions[4]
    w1.in_flight = 1  # its commit's reply is still due
    assert not workers.finished(b"w1")
    w1.in_flight = 0
    assert workers.finished(b"w1") and workers.finished(b"gone")
    w3.in_flight = 0
    assert workers.unfinished() == set()


def test_a_reservation_counts_until_released_once():
    held: dict = {}
    table: Pinned[Cursor] = Pinned(held)
    conn = Conn("a")
    release = table.reserve(conn)
    assert table.count == 1 and held == {conn: 1}
    release()
    release()
    assert table.count == 0 and held == {}


def test_entries_of_lost_connections_can_be_dropped():
    table: Pinned[Cursor] = Pinned()
    lost, live = Conn("lost"), Conn("live")
    table[1] = Cursor(1, lost, 10, "scan")
    table[2] = Cursor(2, live, 11, "scan")
    lost.is_open = False
    assert table.drop_lost() == 1
    assert list(table) == [2] and table.held == {live: 1}


def test_the_pool_picks_a_connection_with_room():
    pool = NodePool([("127.0.0.1", 1)], ConnectionConfig(), ssl_context=None,
                    connect_timeout=1.0)
    a, b = Conn("a"), Conn("b")
    pool.ready.extend([a, b])  # type: ignore[list-item]
    held = {a: 5}
    assert {pool.pick_below(held, 5) for _ in range(4)} == {b}
    held[b] = 5
    assert pool.pick_below(held, 5) is None
    assert pool.pick_below(held, 6) in (a, b)
