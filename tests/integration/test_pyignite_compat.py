"""pyignite 0.6.1 semantics beyond the top-level names, checked differentially: each scenario
runs through pyignite talking to the node and through libclient over the broker (both worker
transports, sync and async) on the same real cluster, fresh tables and caches each time, and
the transcripts (results, exception classes, and at which call they were raised) must be equal.

Covered: when ``sql()`` executes (DDL/DML with no iteration; ``await``/``async with`` for
AioClient), errors at the call pyignite raises them, page sizes, cursor context managers,
close and reading after close, query arguments, ``utils`` ids and hash codes against the
cluster's own metadata, ``cache``/``aio_cache`` module helpers and ``cache_properties``."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import importlib
import uuid
from collections import OrderedDict
from typing import Any

import pytest

from broker.devcluster.brokerproc import running_broker
from tests.libclient.scenarios import Lib, Transcript, norm

pytestmark = pytest.mark.integration

PYIGNITE = Lib.load("pyignite")
LIBCLIENT = Lib.load("libclient")


def mod(lib: Lib, path: str) -> Any:
    return importlib.import_module(f"{lib.name}.{path}")


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory):
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("compat")) as proc:
        yield proc


@pytest.fixture(params=["zmq", "stream"])
def endpoint(broker, request):
    return broker.endpoint if request.param == "zmq" else broker.stream_endpoint


@pytest.fixture
def clients(ignite_node, endpoint):
    """pyignite direct, and libclient over one of the broker's transports."""
    theirs = PYIGNITE.Client()
    theirs.connect(*ignite_node.addresses[0])
    ours = LIBCLIENT.Client(broker=endpoint)
    ours.connect(*ignite_node.addresses[0])
    yield theirs, ours
    theirs.close()
    ours.close()


# -- sync scenarios ----------------------------------------------------------------------------


def sql_runs_at_the_call(lib: Lib, client: Any, tag: str) -> Transcript:
    """DDL and DML run when sql() is called, iterated or not; errors come from that call."""
    t, c = Transcript(), Transcript.call
    table = f"Run_{tag}"
    returned = "returned a cursor"
    c(t, "create, never iterated", lambda: client.sql(
        f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR)") and returned)
    for i in range(5):
        c(t, f"insert {i}, never iterated", lambda i=i: client.sql(
            f"INSERT INTO {table} (id, v) VALUES (?, ?)", query_args=[i, f"v{i}"]) and returned)
    c(t, "all rows are there", lambda: list(client.sql(f"SELECT id, v FROM {table} ORDER BY id")))
    c(t, "update, never iterated", lambda: client.sql(
        f"UPDATE {table} SET v = 'x' WHERE id < 2") and returned)
    c(t, "updated", lambda: list(client.sql(f"SELECT v FROM {table} ORDER BY id")))
    c(t, "syntax error", lambda: client.sql("SELEC nonsense") and returned)
    c(t, "unknown table", lambda: client.sql("SELECT * FROM no_such_table_x") and returned)
    c(t, "duplicate key", lambda: client.sql(
        f"INSERT INTO {table} (id, v) VALUES (1, 'dup')") and returned)
    c(t, "statement type mismatch", lambda: client.sql(
        f"SELECT * FROM {table}", statement_type=mod(lib, "datatypes.sql").StatementType.UPDATE)
        and returned)
    c(t, "missing argument", lambda: client.sql(
        f"SELECT v FROM {table} WHERE id = ?") and returned)
    c(t, "one argument without a list", lambda: list(client.sql(
        f"SELECT v FROM {table} WHERE id = ?", query_args=3)))
    c(t, "a tuple of arguments", lambda: list(client.sql(
        f"SELECT v FROM {table} WHERE id = ?", query_args=(4,))))
    c(t, "unknown schema", lambda: client.sql(f"SELECT * FROM {table}", schema="NOPE")
        and returned)
    c(t, "by cache name", lambda: list(client.sql(
        f"SELECT COUNT(*) FROM {table}", cache=f"SQL_PUBLIC_{table.upper()}")))
    c(t, "by cache id", lambda: list(client.sql(
        f"SELECT COUNT(*) FROM {table}",
        cache=mod(lib, "utils").cache_id(f"SQL_PUBLIC_{table.upper()}"))))
    c(t, "drop, never iterated", lambda: client.sql(f"DROP TABLE {table}") and returned)
    c(t, "dropped", lambda: client.sql(f"SELECT * FROM {table}") and returned)
    return t


def _page_shape(t: Transcript, label: str, cursor: Any) -> None:
    """What a fresh cursor holds: whether more pages follow, the first page's size, the rest,
    and what reading past the end gives."""
    t.append((f"{label}: more", cursor.more))
    t.call(f"{label}: first page", lambda: len(list(cursor.data)))
    t.call(f"{label}: the rest", lambda: list(cursor))
    t.append((f"{label}: more at the end", cursor.more))
    t.call(f"{label}: next at the end", next, cursor)
    t.call(f"{label}: close at the end", cursor.close)


def sql_cursors(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    table = f"Cur_{tag}"
    client.sql(f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR)")
    client.sql(f"INSERT INTO {table} (id, v) VALUES " + ", ".join(
        f"({i}, 'v{i}')" for i in range(7)))
    query = f"SELECT id FROM {table} ORDER BY id"
    for page_size in (1, 3, 7, 100):
        _page_shape(t, f"page_size={page_size}", client.sql(query, page_size=page_size))
    cursor = client.sql(query, page_size=2)
    with cursor as inside:
        t.append(("with gives the cursor", inside is cursor))
        t.call("first row", next, inside)
    t.append(("more after with", cursor.more))
    t.call("the fetched row is still there", next, cursor)
    t.call("past the fetched page", next, cursor)
    t.call("close again", cursor.close)
    t.call("list after close", lambda: list(cursor))
    cursor = client.sql(query, page_size=2, include_field_names=True)
    t.call("field names first", next, cursor)
    t.call("then rows", next, cursor)
    t.call("close half read", cursor.close)
    t.call("read after close", lambda: list(cursor))
    with client.sql(query, page_size=3) as cursor:
        t.call("read whole inside with", lambda: list(cursor))
    t.call("read after with at the end", lambda: list(cursor))
    client.sql(f"DROP TABLE {table}")
    return t


def scan_cursors(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    cache = client.create_cache(f"scan-{tag}")
    cache.put_all({i: f"v{i}" for i in range(7)})
    for page_size in (1, 3, 7, 100):
        cursor = cache.scan(page_size=page_size)
        t.append((f"page_size={page_size}: more", cursor.more))
        t.call(f"page_size={page_size}: first page", lambda c=cursor: len(list(c.data)))
        t.call(f"page_size={page_size}: all", lambda c=cursor: len(list(c)))
        t.call(f"page_size={page_size}: next at the end", next, cursor)
    with cache.scan(page_size=2) as cursor:
        t.call("with: first pair", lambda: type(next(cursor)).__name__)
    t.append(("more after with", cursor.more))
    t.call("read after with", lambda: len(list(cursor)))
    cursor = cache.scan(page_size=3)
    t.call("close at once", cursor.close)
    t.call("read after close", lambda: len(list(cursor)))
    t.call("partitions=5", lambda: sorted(cache.scan(partitions=5)))
    t.call("local", lambda: sorted(cache.scan(local=True)))
    cache.destroy()
    t.call("scan of a destroyed cache", lambda: list(cache.scan()))
    return t


def _person(lib: Lib, type_name: str) -> type:
    return lib.GenericObjectMeta(type_name, (), {}, type_name=type_name, schema=OrderedDict([
        ("name", lib.dt.String), ("age", lib.dt.IntObject), ("id", lib.dt.LongObject),
        ("score", lib.dt.DoubleObject)]))


def ids_and_hashes(lib: Lib, client: Any, tag: str) -> Transcript:
    """utils' ids agree with the ids the cluster keeps; hash helpers agree with pyignite's."""
    t = Transcript()
    utils = mod(lib, "utils")
    type_name = f"Person_{tag[2:]}"  # the same type for both libraries
    person_class = _person(lib, type_name)
    person = person_class(name="Ann", age=30, id=2**40 + 7, score=0.25)
    cache = client.create_cache(f"ids-{tag}")
    cache.put(1, person)
    info = client.get_binary_type(type_name)
    t.append(("type id", info["type_id"] == utils.entity_id(type_name) == person_class.type_id))
    t.append(("schema id", [utils.schema_id(s) for s in info["schemas"]]
              == [person_class.schema_id]))
    t.append(("cache id", cache.cache_id == utils.cache_id(f"ids-{tag}")))
    t.append(("hashcode", utils.hashcode(type_name.lower()) == utils.entity_id(type_name)))
    t.append(("object hash", lib.dt.BinaryObject.hashcode(person, client=client)))
    t.append(("field by id", norm(utils.get_field_by_id(person, utils.entity_id("age"))[0])))
    t.append(("key hashes", [lib.dt.IntObject.hashcode(7), lib.dt.String.hashcode("key"),
                             lib.dt.UUIDObject.hashcode(uuid.UUID(int=99))]))
    cache.destroy()
    return t


def cache_helpers(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    cache_mod, props = mod(lib, "cache"), mod(lib, "datatypes.cache_properties")
    codes = lib.prop_codes
    name = f"helpers-{tag}"
    t.call("get_cache", lambda: cache_mod.get_cache(client, name).name == name)
    t.call("get_cache with settings", cache_mod.get_cache, client, {codes.PROP_NAME: name,
                                                                   codes.PROP_BACKUPS_NUMBER: 1})
    t.call("create_cache", lambda: cache_mod.create_cache(client, {
        codes.PROP_NAME: name, codes.PROP_BACKUPS_NUMBER: 1}).name == name)
    t.call("create_cache again", cache_mod.create_cache, client, name)
    cache = cache_mod.get_or_create_cache(client, name)
    t.append(("isinstance BaseCache", isinstance(cache, cache_mod.BaseCache)))
    settings = cache.settings
    t.append(("backups", settings[codes.PROP_BACKUPS_NUMBER]))
    t.append(("settings are PROP_CODES", set(settings) <= cache_mod.PROP_CODES))
    t.append(("property classes", sorted(props.prop_map(code).__name__ for code in settings)))
    t.append(("value hints", props.prop_map(codes.PROP_BACKUPS_NUMBER).prop_data_class.__name__))
    cache.destroy()
    return t


SYNC = [sql_runs_at_the_call, sql_cursors, scan_cursors, ids_and_hashes, cache_helpers]


@pytest.mark.parametrize("scenario", SYNC, ids=lambda f: f.__name__)
def test_sync(scenario, clients):
    theirs, ours = clients
    tag = uuid.uuid4().hex[:6]
    expected = scenario(PYIGNITE, theirs, f"py{tag}")
    got = scenario(LIBCLIENT, ours, f"lc{tag}")
    assert got == expected


def test_object_hash_is_the_one_the_node_keeps(clients):
    """An object key libclient writes (its header hash made by the broker) is found by
    pyignite with its own copy of the key, whose hash pyignite computes: the node matched the
    two hashes, and BinaryObject.hashcode gives that same hash in both libraries."""
    theirs, ours = clients
    type_name = f"Hashed_{uuid.uuid4().hex[:6]}"
    key = _person(LIBCLIENT, type_name)(name="Bob", age=41, id=-5, score=1.5)
    their_key = _person(PYIGNITE, type_name)(name="Bob", age=41, id=-5, score=1.5)
    cache = ours.create_cache(f"hash-{type_name}")
    cache.put(key, "found")
    assert theirs.get_cache(cache.name).get(their_key) == "found"
    assert (LIBCLIENT.dt.BinaryObject.hashcode(key, client=ours)
            == PYIGNITE.dt.BinaryObject.hashcode(their_key, client=theirs))
    cache.destroy()


def test_decimal_keys_are_found_by_either_client(clients):
    """pyignite writes decimals normalised (12.50 as 12.5) and BigDecimal equality counts the
    scale: libclient writes them the same way, so either finds the other's keys."""
    theirs, ours = clients
    name = f"dec-{uuid.uuid4().hex[:6]}"
    py_cache, lc_cache = theirs.create_cache(name), ours.get_cache(name)
    for i, text in enumerate(["12.50", "7.100", "100", "0.00", "-3.2500", "1E+3"]):
        py_cache.put(decimal.Decimal(text), f"py{i}")
        lc_cache.put(decimal.Decimal(text) + 1000, f"lc{i}")
        assert lc_cache.get(decimal.Decimal(text)) == f"py{i}", text
        assert py_cache.get(decimal.Decimal(text) + 1000) == f"lc{i}", text
    assert sorted(lc_cache.get_all([decimal.Decimal("12.5"), decimal.Decimal("7.1")]).values()) \
        == ["py0", "py1"]
    py_cache.destroy()


def _every_field(lib: Lib, type_name: str) -> Any:
    d = lib.dt
    inner = lib.GenericObjectMeta(f"{type_name}_In", (), {}, type_name=f"{type_name}_In",
                                  schema=OrderedDict([("x", d.IntObject)]))
    values = OrderedDict([
        ("ts", (d.TimestampObject, (datetime.datetime(2020, 1, 2, 3, 4, 5), 77))),
        ("date", (d.DateObject, datetime.datetime(2021, 1, 1))),
        ("time", (d.TimeObject, datetime.timedelta(seconds=3))),
        ("dec", (d.DecimalObject, decimal.Decimal("-12.50"))),
        ("uuid", (d.UUIDObject, uuid.UUID(int=5))), ("col", (d.CollectionObject, (1, [1, "a"]))),
        ("map", (d.MapObject, (1, {"k": 2}))), ("ints", (d.IntArrayObject, [1, 2, 3])),
        ("strs", (d.StringArrayObject, ["a", None])), ("inner", (d.BinaryObject, inner(x=4))),
        ("flag", (d.BoolObject, True)), ("char", (d.CharObject, "z")),
        ("real", (d.FloatObject, 0.5)), ("raw", (d.ByteArrayObject, b"ab")),
        ("none", (d.String, None)),
        ("stamps", (d.TimestampArrayObject, [(datetime.datetime(2020, 1, 1), 0)])),
        ("enum", (d.BinaryEnumObject, (123, 2))), ("objs", (d.ObjectArrayObject, (-1, [1, "x"]))),
        ("long", (d.LongObject, -(2**40))),
    ])
    cls = lib.GenericObjectMeta(type_name, (), {}, type_name=type_name,
                                schema=OrderedDict((k, hint) for k, (hint, _) in values.items()))
    return cls(**{k: v for k, (_, v) in values.items()})


def test_object_hashcode_like_pyignite_for_every_field_type(clients):
    theirs, ours = clients
    type_name = f"Every_{uuid.uuid4().hex[:6]}"
    expected = PYIGNITE.dt.BinaryObject.hashcode(_every_field(PYIGNITE, type_name), theirs)
    assert LIBCLIENT.dt.BinaryObject.hashcode(_every_field(LIBCLIENT, type_name), ours) \
        == expected


def test_scan_arguments_out_of_bounds_fail_at_the_same_call(clients):
    """Deliberate difference: the broker refuses page sizes and partition numbers out of range
    itself, with ParameterError, at the call where pyignite gets the node's refusal
    (CacheError) or loses its connection (sql page_size=0: the node closes it)."""
    theirs, ours = clients
    name = f"bounds-{uuid.uuid4().hex[:6]}"
    py_cache, lc_cache = theirs.create_cache(name), ours.get_cache(name)
    with pytest.raises(PYIGNITE.exceptions.CacheError):
        py_cache.scan(page_size=0)
    with pytest.raises(LIBCLIENT.exceptions.ParameterError):
        lc_cache.scan(page_size=0)
    with pytest.raises(LIBCLIENT.exceptions.ParameterError):
        lc_cache.scan(partitions=99999)
    with pytest.raises(LIBCLIENT.exceptions.ParameterError):
        ours.sql("SELECT 1", page_size=0)
    py_cache.destroy()


# -- async scenarios ---------------------------------------------------------------------------


async def _collect(cursor: Any) -> list:
    return [row async for row in cursor]


async def _awaited(cursor: Any) -> str:
    await cursor
    return "awaited"


async def _step(t: Transcript, label: str, make: Any) -> Any:
    """Record the result of calling ``make()`` and awaiting what it returns."""
    try:
        result = await make()
    except Exception as exc:
        t.append((label, norm(exc)))
        return exc
    t.append((label, norm(result)))
    return result


async def aio_sql_runs_when_awaited(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    table = f"ARun_{tag}"
    create = client.sql(f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR)")
    await _step(t, "not awaited: no table", lambda: _awaited(client.sql(f"SELECT * FROM {table}")))
    await _step(t, "await runs it", lambda: _awaited(create))

    async def insert(i: int) -> str:
        async with client.sql(f"INSERT INTO {table} (id, v) VALUES (?, ?)", query_args=[i, "v"]):
            return "inserted"

    for i in range(4):
        await _step(t, f"async with runs it {i}", lambda i=i: insert(i))
    try:
        bad = client.sql("SELEC nonsense")
        t.append(("syntax error: not at the call", True))
    except Exception as exc:
        t.append(("syntax error at the call", norm(exc)))
    await _step(t, "syntax error when awaited", lambda: _awaited(bad))
    await _step(t, "duplicate when awaited", lambda: _awaited(
        client.sql(f"INSERT INTO {table} (id, v) VALUES (1, 'dup')")))
    await _step(t, "one argument without a list", lambda: _collect_awaited(client.sql(
        f"SELECT id FROM {table} WHERE id = ?", query_args=2)))
    await _step(t, "count", lambda: _collect_awaited(client.sql(f"SELECT COUNT(*) FROM {table}")))
    await _step(t, "drop", lambda: _awaited(client.sql(f"DROP TABLE {table}")))
    return t


async def _collect_awaited(cursor: Any) -> list:
    async with cursor:
        return await _collect(cursor)


async def aio_cursors(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    table = f"ACur_{tag}"
    await client.sql(f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR)")
    await client.sql(f"INSERT INTO {table} (id, v) VALUES " + ", ".join(
        f"({i}, 'v{i}')" for i in range(7)))
    query = f"SELECT id FROM {table} ORDER BY id"
    await _step(t, "uninitialized", lambda: client.sql(query).__anext__())
    for page_size in (1, 3, 100):
        cursor = await client.sql(query, page_size=page_size)
        t.append((f"{page_size}: more", cursor.more))
        t.append((f"{page_size}: first page", len(list(cursor.data))))
        await _step(t, f"{page_size}: rest", lambda c=cursor: _collect(c))
        await _step(t, f"{page_size}: past the end", lambda c=cursor: c.__anext__())
        await cursor.close()
    cursor = client.sql(query, page_size=2, include_field_names=True)
    async with cursor as inside:
        t.append(("async with gives the cursor", inside is cursor))
        await _step(t, "names", cursor.__anext__)
        await _step(t, "row", cursor.__anext__)
    t.append(("more after async with", cursor.more))
    await _step(t, "fetched row still there", cursor.__anext__)
    await _step(t, "past the fetched page", cursor.__anext__)
    await _step(t, "close again", cursor.close)

    cache = await client.create_cache(f"ascan-{tag}")
    await cache.put_all({i: i for i in range(7)})
    await _step(t, "scan uninitialized", lambda: cache.scan(page_size=2).__anext__())
    scan = cache.scan(page_size=2)
    async with scan:
        t.append(("scan more", scan.more))
        await _step(t, "scan first", lambda: _shape(scan.__anext__()))
    await _step(t, "scan after async with", lambda: _count(scan))
    async with cache.scan(page_size=3) as whole:
        await _step(t, "scan all", lambda: _count(whole))
    await cache.destroy()
    await client.sql(f"DROP TABLE {table}")
    return t


async def _shape(coro: Any) -> str:
    return type(await coro).__name__


async def _count(cursor: Any) -> int:
    return len(await _collect(cursor))


async def aio_helpers(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    aio_cache, codes = mod(lib, "aio_cache"), lib.prop_codes
    name = f"ahelp-{tag}"
    await _step(t, "create_cache", lambda: _name(aio_cache.create_cache(client, name)))
    await _step(t, "create_cache again", lambda: _name(aio_cache.create_cache(client, name)))
    await _step(t, "get_or_create_cache", lambda: _name(aio_cache.get_or_create_cache(
        client, name)))
    await _step(t, "get_cache with settings", lambda: aio_cache.get_cache(
        client, {codes.PROP_NAME: name, codes.PROP_BACKUPS_NUMBER: 2}))
    cache = await aio_cache.get_cache(client, name)
    t.append(("settings name", (await cache.settings())[codes.PROP_NAME] == name))
    await _step(t, "hashcode_async", lambda: lib.dt.String.hashcode_async("hello"))
    await cache.destroy()
    return t


async def _name(coro: Any) -> bool:
    return (await coro).name.startswith("ahelp-")


ASYNC = [aio_sql_runs_when_awaited, aio_cursors, aio_helpers]


@pytest.mark.parametrize("scenario", ASYNC, ids=lambda f: f.__name__)
def test_async(scenario, ignite_node, endpoint):
    host, port = ignite_node.addresses[0]
    tag = uuid.uuid4().hex[:6]

    async def run(lib: Lib, **kwargs: str) -> Transcript:
        client = lib.AioClient(**kwargs)
        async with client.connect(host, port):
            return await scenario(lib, client, f"{lib.name[:2]}{tag}")

    expected = asyncio.run(run(PYIGNITE))
    got = asyncio.run(run(LIBCLIENT, broker=endpoint))
    assert got == expected
