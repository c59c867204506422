"""SQL, scan and select_row inside a transaction, through a real broker over unix:// and ipc://,
sync and asyncio: on a node with tx-aware queries (feature bit 18) they join the transaction
(they see its own uncommitted writes, a rollback discards their DML, other workers see nothing
before the commit); on a default node the same code runs outside the transaction, as pyignite."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import OrderedDict
from collections.abc import Iterator

import pytest

from broker.devcluster import DevCluster
from broker.devcluster.brokerproc import BrokerProcess, running_broker
from libclient import AioClient, Client, GenericObjectMeta
from libclient.calls import Call
from libclient.datatypes import String
from libclient.datatypes.transactions import TransactionConcurrency, TransactionIsolation
from libclient.exceptions import ParameterError, SQLError
from libclient.transaction import current_tx
from protocol.features import Feature

pytestmark = pytest.mark.integration

TRANSPORTS = ["unix", "ipc"]
PESSIMISTIC = TransactionConcurrency.PESSIMISTIC
READ_COMMITTED = TransactionIsolation.READ_COMMITTED

_KEY_BLOCKS = itertools.count(0, 100)  # each test's rows: ids block..block+99 of the table


class Table:
    """A transactional SQL table (ID BIGINT key, V VARCHAR) whose cache values are ``self.row``
    objects, so ``cache.put(id, table.row(V="text"))`` is the row (id, "text")."""

    def __init__(self, broker: BrokerProcess) -> None:
        self.broker = broker
        self.name = f"TXSQL_{uuid.uuid4().hex[:8].upper()}"
        value_type = f"TxSqlRow{self.name[6:]}"
        self.row = GenericObjectMeta(value_type, (), {}, type_name=value_type,
                                     schema=OrderedDict([("V", String)]))

    def create(self) -> None:
        with _client(self.broker) as client:
            client.sql(f"CREATE TABLE {self.name} (ID BIGINT PRIMARY KEY, V VARCHAR) WITH "
                       f'"atomicity=transactional,cache_name={self.name},'
                       f'value_type={self.row.__name__}"')

    def drop(self) -> None:
        with _client(self.broker) as client:
            client.sql(f"DROP TABLE {self.name}")

    def rows(self, client: Client, block: int) -> list[list[object]]:
        """This test's rows as ``client`` sees them now (in its transaction, if any)."""
        return list(client.sql(f"SELECT ID, V FROM {self.name} WHERE ID >= ? AND ID < ? "
                               "ORDER BY ID", query_args=[block, block + 100]))


def _pairs(pairs: object, block: int) -> list[list[object]]:
    """This test's (id, row object) pairs of a scan or select_row as sorted [id, V] lists."""
    return sorted([key, value.V] for key, value in pairs if block <= key < block + 100)


def _table(broker: BrokerProcess) -> Iterator[Table]:
    table = Table(broker)
    table.create()
    try:
        yield table
    finally:
        table.drop()


@pytest.fixture(scope="module")
def aware(ignite_tx_sql, tmp_path_factory) -> Iterator[BrokerProcess]:
    with running_broker(ignite_tx_sql.addresses, tmp_path_factory.mktemp("txsql-aware")) as b:
        yield b


@pytest.fixture(scope="module")
def plain(ignite_node, tmp_path_factory) -> Iterator[BrokerProcess]:
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("txsql-plain")) as b:
        yield b


@pytest.fixture(scope="module")
def aware_table(aware) -> Iterator[Table]:
    yield from _table(aware)


@pytest.fixture(scope="module")
def plain_table(plain) -> Iterator[Table]:
    yield from _table(plain)


def _endpoint(broker: BrokerProcess, transport: str) -> str:
    return broker.stream_endpoint if transport == "unix" else broker.endpoint


def _client(broker: BrokerProcess, transport: str = "ipc") -> Client:
    client = Client(broker=_endpoint(broker, transport))
    client.connect()
    return client


def _clients(broker: BrokerProcess, transport: str) -> tuple[Client, Client]:
    """Two workers on the transport: one runs the transaction, the other looks from outside."""
    return _client(broker, transport), _client(broker, transport)


# -- a node with tx-aware queries --------------------------------------------------------------


def test_the_dev_cluster_records_the_option(ignite_tx_sql, ignite_node):
    assert DevCluster.attach(ignite_tx_sql.base_port).tx_aware_queries
    assert not DevCluster.attach(ignite_node.base_port).tx_aware_queries


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sql_in_a_transaction_sees_its_writes_others_only_after_commit(
        aware, aware_table, transport):
    block = next(_KEY_BLOCKS)
    client, other = _clients(aware, transport)
    with client, other:
        assert Feature.TX_AWARE_QUERIES in client.broker_info["features"]
        cache = client.get_cache(aware_table.name)
        with client.tx_start(PESSIMISTIC, READ_COMMITTED) as tx:
            client.sql(f"INSERT INTO {aware_table.name} (ID, V) VALUES (?, 'a'), (?, 'b')",
                       query_args=[block, block + 1])
            client.sql(f"UPDATE {aware_table.name} SET V = 'b2' WHERE ID = ?",
                       query_args=[block + 1])
            cache.put(block + 2, aware_table.row(V="put"))
            mine = [[block, "a"], [block + 1, "b2"], [block + 2, "put"]]
            assert aware_table.rows(client, block) == mine
            assert _pairs(cache.scan(page_size=2), block) == mine
            assert aware_table.rows(other, block) == []
            tx.commit()
        assert aware_table.rows(other, block) == mine


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rollback_discards_sql_dml(aware, aware_table, transport):
    block = next(_KEY_BLOCKS)
    client, other = _clients(aware, transport)
    with client, other:
        client.sql(f"INSERT INTO {aware_table.name} (ID, V) VALUES (?, 'kept')",
                   query_args=[block])
        with client.tx_start(PESSIMISTIC, READ_COMMITTED) as tx:
            client.sql(f"UPDATE {aware_table.name} SET V = 'changed' WHERE ID = ?",
                       query_args=[block])
            client.sql(f"INSERT INTO {aware_table.name} (ID, V) VALUES (?, 'new')",
                       query_args=[block + 1])
            assert aware_table.rows(client, block) == [[block, "changed"], [block + 1, "new"]]
            assert aware_table.rows(other, block) == [[block, "kept"]]
            tx.rollback()
        assert aware_table.rows(client, block) == [[block, "kept"]]
        assert aware_table.rows(other, block) == [[block, "kept"]]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_select_row_joins_the_transaction(aware, aware_table, transport):
    block = next(_KEY_BLOCKS)
    client, other = _clients(aware, transport)
    with client, other:
        cache = client.get_cache(aware_table.name)
        where = "ID >= ? AND ID < ?"
        with client.tx_start(PESSIMISTIC, READ_COMMITTED) as tx:
            cache.put(block, aware_table.row(V="in tx"))
            with pytest.warns(DeprecationWarning):
                mine = cache.select_row(where, query_args=[block, block + 100])
                outside = other.get_cache(aware_table.name).select_row(
                    where, query_args=[block, block + 100])
            assert _pairs(mine, block) == [[block, "in tx"]]
            assert _pairs(outside, block) == []
            tx.rollback()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sql_in_a_repeatable_read_transaction_is_refused_clearly(aware, aware_table, transport):
    """Ignite 2.17 runs SQL only in READ_COMMITTED transactions (pyignite's default
    isolation is REPEATABLE_READ)."""
    with _client(aware, transport) as client, client.tx_start() as tx:
        with pytest.raises(SQLError, match="isolation mode not supported for SQL"):
            aware_table.rows(client, next(_KEY_BLOCKS))
        tx.rollback()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_asyncio_sql_joins_the_transaction(aware, aware_table, transport):
    block = next(_KEY_BLOCKS)
    select = (f"SELECT ID, V FROM {aware_table.name} WHERE ID >= {block} AND ID < {block + 100} "
              "ORDER BY ID")

    async def main() -> None:
        client = AioClient(broker=_endpoint(aware, transport))
        async with client.connect():
            cache = await client.get_cache(aware_table.name)
            async with client.tx_start(PESSIMISTIC, READ_COMMITTED) as tx:
                await client.sql(f"INSERT INTO {aware_table.name} (ID, V) VALUES ({block}, 'a')")
                await cache.put(block + 1, aware_table.row(V="put"))
                async with client.sql(select) as cursor:
                    assert [row async for row in cursor] == [[block, "a"], [block + 1, "put"]]
                async with cache.scan() as cursor:
                    assert _pairs([pair async for pair in cursor], block) == [
                        [block, "a"], [block + 1, "put"]]
                with _client(aware, transport) as other:
                    assert aware_table.rows(other, block) == []
                await tx.rollback()
            async with client.sql(select) as cursor:
                assert [row async for row in cursor] == []

    asyncio.run(asyncio.wait_for(main(), 120))


# -- a default node: queries run outside the transaction, as in pyignite ----------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_default_node_runs_queries_outside_the_transaction(plain, plain_table, transport):
    block = next(_KEY_BLOCKS)
    client, other = _clients(plain, transport)
    with client, other:
        assert Feature.TX_AWARE_QUERIES not in client.broker_info["features"]
        cache = client.get_cache(plain_table.name)
        with client.tx_start() as tx:  # pyignite's defaults: PESSIMISTIC, REPEATABLE_READ
            cache.put(block, plain_table.row(V="in tx"))
            client.sql(f"INSERT INTO {plain_table.name} (ID, V) VALUES (?, 'sql')",
                       query_args=[block + 1])
            assert plain_table.rows(client, block) == [[block + 1, "sql"]]
            assert plain_table.rows(other, block) == [[block + 1, "sql"]]
            tx.rollback()
        assert plain_table.rows(other, block) == [[block + 1, "sql"]]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_asyncio_default_node_runs_queries_outside_the_transaction(plain, plain_table, transport):
    block = next(_KEY_BLOCKS)

    async def main() -> None:
        client = AioClient(broker=_endpoint(plain, transport))
        async with client.connect(), client.tx_start() as tx:
            await client.sql(f"INSERT INTO {plain_table.name} (ID, V) VALUES ({block}, 'a')")
            await tx.rollback()
        with _client(plain, transport) as other:
            assert plain_table.rows(other, block) == [[block, "a"]]

    asyncio.run(asyncio.wait_for(main(), 120))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_broker_refuses_tx_on_a_query_where_bit_18_was_not_negotiated(plain, transport):
    """What a stub that sends ``tx`` regardless would get (libclient does not send it there)."""
    with _client(plain, transport) as client, client.tx_start() as tx:
        query = {"query": "SELECT 1", "schema": "PUBLIC", "tx": current_tx(client).tx_id}
        with pytest.raises(ParameterError, match="needs feature bit 18"):
            client._execute(Call("sql", query))
        tx.rollback()
