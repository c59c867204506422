"""The benchmark's workloads, the data they need, and the worker processes that run them.

A workload is the same client code for both libraries: it only uses pyignite's public API, and
``Lib`` hands it either ``pyignite`` (each worker its own partition-aware ``Client`` connected
to every node) or ``libclient`` (each worker a stub talking to the broker).  Worker processes
are forked from a ``forkserver`` that has both libraries imported already, and obey a small
command protocol over a pipe:

    ("prepare", workload)            -> ("ready", None)   build the op, check it, warm up
    ("go", start_at, duration)       -> ("done", Sample)  run the timed window
    ("stop",)                        -> the process exits (its client closed)

Any exception in a worker comes back as ``("error", traceback)``.
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.connection
import os
import random
import time
import traceback
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

# -- the data ------------------------------------------------------------------------------------

VALUE = "v" * 100  # the 100-byte value of the key-value workloads
KEYSPACE = 10_000  # preloaded keys of bench-kv
BATCH = 100  # keys per get_all / put_all
OBJ_KEYS = 1_000  # preloaded objects per library
SQL_ROWS = 100_000
TX_PUTS = 5
TX_KEYS_PER_WORKER = 1_000  # each worker writes its own key range: no lock contention
KV_CACHE = "bench-kv"
TX_CACHE = "bench-tx"
SQL_TABLE = "bench_rows"
SQL_QUERY = f"SELECT id, name, qty, price, created FROM {SQL_TABLE}"
OBJ_TYPE = "BenchObject20"
LIBS = ("pyignite", "libclient")

#: 20 fields (name, pyignite/libclient hint name, value): 5 int, 5 String, 4 double, 3 long,
#: 2 bool, 1 UUID - the same type as bench/codec_bench.py.
OBJ_FIELDS: list[tuple[str, str, Any]] = (
    [(f"int{i}", "IntObject", i * 1000 - 7) for i in range(5)]
    + [(f"str{i}", "String", f"string field number {i}") for i in range(5)]
    + [(f"dbl{i}", "DoubleObject", i / 4) for i in range(4)]
    + [(f"lng{i}", "LongObject", 2**40 + i) for i in range(3)]
    + [(f"flag{i}", "BoolObject", i % 2 == 0) for i in range(2)]
    + [("id", "UUIDObject", uuid.UUID(int=0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0))]
)


def obj_cache(lib: str) -> str:
    """Each library reads and writes objects in a cache it preloaded itself."""
    return f"bench-obj-{lib}"


# -- the two libraries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where clients go: the cluster's nodes (pyignite) and the broker's endpoint (libclient)."""

    addresses: tuple[tuple[str, int], ...]
    endpoint: str


class Lib:
    """``pyignite`` or ``libclient``, seen through the API they share."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.module: ModuleType = importlib.import_module(name)
        self.dt: ModuleType = importlib.import_module(f"{name}.datatypes")
        self.props: ModuleType = importlib.import_module(f"{name}.datatypes.prop_codes")

    def connect(self, target: Target) -> Any:
        """A connected client: direct to every node, or through the broker."""
        if self.name == "pyignite":
            client = self.module.Client(partition_aware=True)
            client.connect(list(target.addresses))
        else:
            client = self.module.Client(broker=target.endpoint)
            client.connect()
        return client

    def object_class(self) -> type:
        """The 20-field complex-object class (``GenericObjectMeta``) of this library."""
        schema = OrderedDict((name, getattr(self.dt, hint)) for name, hint, _ in OBJ_FIELDS)
        meta = self.module.GenericObjectMeta
        return meta(OBJ_TYPE, (), {}, type_name=OBJ_TYPE, schema=schema)

    def make_object(self, cls: type, key: int) -> Any:
        values = {name: value for name, _, value in OBJ_FIELDS}
        values["int0"] = key
        return cls(**values)


# -- one-off set-up of the cluster (run by the orchestrator) -------------------------------------


def setup_cluster(clients: dict[str, Any], libs: dict[str, Lib], workloads: set[str]) -> None:
    """The caches and data the given workloads need (bench-kv always: the floor uses it)."""
    py = clients["pyignite"]
    kv = py.get_or_create_cache(KV_CACHE)
    for start in range(0, KEYSPACE, 1000):
        kv.put_all({key: VALUE for key in range(start, start + 1000)})
    if "tx" in workloads:
        props = libs["pyignite"].props
        py.get_or_create_cache({props.PROP_NAME: TX_CACHE,
                                props.PROP_CACHE_ATOMICITY_MODE: 0})  # 0 = TRANSACTIONAL
    if workloads & {"obj_get", "obj_put"}:
        for name, client in clients.items():
            _load_objects(client, libs[name])
    if "sql" in workloads:
        _load_sql_rows(py)


def _load_objects(client: Any, lib: Lib) -> None:
    cls = lib.object_class()
    client.register_binary_type(cls)
    cache = client.get_or_create_cache(obj_cache(lib.name))
    cache.put_all({key: lib.make_object(cls, key) for key in range(OBJ_KEYS)})


def _load_sql_rows(client: Any) -> None:
    """A 5-column table of SQL_ROWS rows, filled server-side in one INSERT ... SELECT."""
    count = _scalar(client, f"SELECT COUNT(*) FROM {SQL_TABLE}", missing_ok=True)
    if count == SQL_ROWS:
        return
    _scalar(client, f"DROP TABLE IF EXISTS {SQL_TABLE}")
    _scalar(client, f"CREATE TABLE {SQL_TABLE} (id BIGINT PRIMARY KEY, name VARCHAR, qty INT, "
                    f"price DOUBLE, created BIGINT) WITH \"CACHE_NAME={SQL_TABLE}\"")
    _scalar(client, f"INSERT INTO {SQL_TABLE} (id, name, qty, price, created) "
                    "SELECT x, CONCAT('name-', x), CAST(x AS INT), x * 1.5, x * 1000 "
                    f"FROM system_range(1, {SQL_ROWS})")
    count = _scalar(client, f"SELECT COUNT(*) FROM {SQL_TABLE}")
    if count != SQL_ROWS:
        raise RuntimeError(f"{SQL_TABLE} has {count} rows, expected {SQL_ROWS}")


def _scalar(client: Any, query: str, missing_ok: bool = False) -> Any:
    try:
        rows = list(client.sql(query))
    except Exception:
        if missing_ok:
            return None
        raise
    return rows[0][0] if rows and rows[0] else None


# -- workloads (run inside worker processes) -----------------------------------------------------

Op = Callable[[], int]  # one operation; returns the units it did (1, or rows for SQL)


@dataclass
class OpContext:
    """What a worker's op factory gets."""

    lib: Lib
    client: Any
    worker: int
    rng: random.Random


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    make: Callable[[OpContext], Op]  # builds the op and checks it once against the cluster
    unit: str = "ops"
    warmup_s: float = 0.3


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _get(ctx: OpContext) -> Op:
    cache = ctx.client.get_cache(KV_CACHE)
    key = ctx.rng.randrange
    _check(cache.get(1) == VALUE, "get: bench-kv is not preloaded")

    def op() -> int:
        cache.get(key(KEYSPACE))
        return 1

    return op


def _get_hot(ctx: OpContext) -> Op:
    """Every worker reads the same key: what read coalescing in the broker is for."""
    cache = ctx.client.get_cache(KV_CACHE)
    _check(cache.get(1) == VALUE, "get_hot: bench-kv is not preloaded")

    def op() -> int:
        cache.get(1)
        return 1

    return op


def _put(ctx: OpContext) -> Op:
    cache = ctx.client.get_cache(KV_CACHE)
    key = ctx.rng.randrange

    def op() -> int:
        cache.put(key(KEYSPACE), VALUE)
        return 1

    return op


def _mix(ctx: OpContext) -> Op:
    cache = ctx.client.get_cache(KV_CACHE)
    key, draw = ctx.rng.randrange, ctx.rng.random

    def op() -> int:
        if draw() < 0.9:
            cache.get(key(KEYSPACE))
        else:
            cache.put(key(KEYSPACE), VALUE)
        return 1

    return op


def _get_all(ctx: OpContext) -> Op:
    cache = ctx.client.get_cache(KV_CACHE)
    sample, keys = ctx.rng.sample, range(KEYSPACE)
    _check(len(cache.get_all(list(range(BATCH)))) == BATCH, "get_all: missing keys")

    def op() -> int:
        cache.get_all(sample(keys, BATCH))
        return 1

    return op


def _put_all(ctx: OpContext) -> Op:
    cache = ctx.client.get_cache(KV_CACHE)
    sample, keys = ctx.rng.sample, range(KEYSPACE)

    def op() -> int:
        cache.put_all(dict.fromkeys(sample(keys, BATCH), VALUE))
        return 1

    return op


def _obj_cache(ctx: OpContext) -> tuple[Any, type]:
    cls = ctx.lib.object_class()
    ctx.client.register_binary_type(cls)
    return ctx.client.get_cache(obj_cache(ctx.lib.name)), cls


def _obj_get(ctx: OpContext) -> Op:
    cache, _ = _obj_cache(ctx)
    key = ctx.rng.randrange
    got = cache.get(7)
    _check(all(getattr(got, name) == value for name, _, value in OBJ_FIELDS[1:]),
           f"obj_get: {got!r} is not the 20-field object")

    def op() -> int:
        cache.get(key(OBJ_KEYS))
        return 1

    return op


def _obj_put(ctx: OpContext) -> Op:
    cache, cls = _obj_cache(ctx)
    key = ctx.rng.randrange
    obj = ctx.lib.make_object(cls, 0)

    def op() -> int:
        cache.put(key(OBJ_KEYS), obj)
        return 1

    return op


def _sql(ctx: OpContext) -> Op:
    client = ctx.client
    count = _scalar(client, f"SELECT COUNT(*) FROM {SQL_TABLE}")
    _check(count == SQL_ROWS, f"sql: {SQL_TABLE} has {count} rows")

    def op() -> int:
        rows = 0
        for _ in client.sql(SQL_QUERY):  # the default page size (1024 in both)
            rows += 1
        _check(rows == SQL_ROWS, f"sql: streamed {rows} rows, expected {SQL_ROWS}")
        return rows

    return op


def _tx(ctx: OpContext) -> Op:
    client = ctx.client
    cache = client.get_cache(TX_CACHE)
    concurrency = ctx.lib.dt.TransactionConcurrency.PESSIMISTIC
    isolation = ctx.lib.dt.TransactionIsolation.REPEATABLE_READ
    base = ctx.worker * TX_KEYS_PER_WORKER
    sample, keys = ctx.rng.sample, range(base, base + TX_KEYS_PER_WORKER)

    def op() -> int:
        with client.tx_start(concurrency, isolation) as tx:
            for key in sample(keys, TX_PUTS):
                cache.put(key, VALUE)
            tx.commit()
        return 1

    with client.tx_start(concurrency, isolation) as tx:
        cache.put(base, "check")
        tx.commit()
    _check(cache.get(base) == "check", "tx: a committed put is not visible")
    return op


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("get", "get, 100-byte value", _get),
    Workload("get_hot", "get of one hot key by every worker", _get_hot),
    Workload("put", "put, 100-byte value", _put),
    Workload("mix", "90/10 get/put", _mix),
    Workload("get_all", f"get_all of {BATCH} keys", _get_all),
    Workload("put_all", f"put_all of {BATCH} keys", _put_all),
    Workload("obj_get", "20-field object get", _obj_get),
    Workload("obj_put", "20-field object put", _obj_put),
    Workload("sql", f"SQL stream {SQL_ROWS:,} rows x 5 cols", _sql, unit="rows", warmup_s=0.0),
    Workload("tx", f"transaction of {TX_PUTS} puts", _tx),
)}


# -- the worker process --------------------------------------------------------------------------


@dataclass
class Sample:
    """One worker's timed window."""

    ops: int
    units: int
    started: float  # monotonic seconds
    ended: float
    latencies_ns: bytes  # array('q')
    cpu_s: float = 0.0
    errors: list[str] = field(default_factory=list)


def _warm_up(op: Op, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        op()


def run_window(op: Op, start_at: float, duration: float) -> Sample:
    """Wait for ``start_at`` (monotonic, shared by all workers), then run ops until
    ``start_at + duration``; the op in progress at the end completes and counts."""
    latencies = array("q")
    ops = units = 0
    now = time.monotonic()
    if start_at > now:
        time.sleep(start_at - now)
    end_ns = int((start_at + duration) * 1e9)
    clock = time.perf_counter_ns  # CLOCK_MONOTONIC, like time.monotonic
    started = clock()
    finished = started
    while finished < end_ns or ops == 0:
        before = clock()
        units += op()
        finished = clock()
        latencies.append(finished - before)
        ops += 1
    return Sample(ops, units, started / 1e9, finished / 1e9, latencies.tobytes())


def worker_main(conn: multiprocessing.connection.Connection, lib_name: str, target: Target,
                index: int) -> None:
    """A worker process: one client, then commands from the orchestrator until "stop"."""
    lib = Lib(lib_name)
    try:
        client = lib.connect(target)
    except Exception:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("connected", os.getpid()))
    ctx = OpContext(lib, client, index, random.Random(index * 7919 + LIBS.index(lib_name)))
    op: Op | None = None
    try:
        while True:
            command = conn.recv()
            if command[0] == "stop":
                return
            try:
                op = _obey(command, ctx, op, conn)
            except Exception:
                conn.send(("error", f"{lib_name} worker {index}:\n{traceback.format_exc()}"))
    finally:
        client.close()


def _obey(command: tuple, ctx: OpContext, op: Op | None,
          conn: multiprocessing.connection.Connection) -> Op | None:
    if command[0] == "prepare":
        workload = WORKLOADS[command[1]]
        op = workload.make(ctx)
        _warm_up(op, workload.warmup_s)
        conn.send(("ready", None))
    elif command[0] == "go":
        assert op is not None, "go before prepare"
        conn.send(("done", run_window(op, command[1], command[2])))
    else:
        raise ValueError(f"unknown command {command!r}")
    return op


def forkserver_context() -> multiprocessing.context.BaseContext:
    """Worker processes are forked from a server that already imported both libraries."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["bench.workloads", "pyignite", "libclient", "libclient.client",
                                "libclient.transport", "protocol.ipc", "zmq"])
    return ctx
