"""Scripted scenarios run twice against the same cluster: through pyignite talking to a node
directly, and through libclient talking to the broker.  Each takes a ``Lib`` (the package's
modules: the only thing that differs, as after ``sed s/pyignite/libclient/``) and returns a
transcript of results and exception class names; the two transcripts must be equal.

Several follow pyignite's own examples (examples/*.py in apache/ignite-python-thin-client),
rewritten here as transcripts rather than prints.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import importlib
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass
class Lib:
    name: str
    root: ModuleType
    dt: ModuleType
    prop_codes: ModuleType
    cache_config: ModuleType
    exceptions: ModuleType
    key_value: ModuleType

    @classmethod
    def load(cls, name: str) -> Lib:
        def mod(path: str) -> ModuleType:
            return importlib.import_module(f"{name}.{path}")

        return cls(name, importlib.import_module(name), mod("datatypes"),
                   mod("datatypes.prop_codes"), mod("datatypes.cache_config"),
                   mod("exceptions"), mod("datatypes.key_value"))

    @property
    def Client(self) -> Any:
        return self.root.Client

    @property
    def AioClient(self) -> Any:
        return self.root.AioClient

    @property
    def GenericObjectMeta(self) -> Any:
        return self.root.GenericObjectMeta


def norm(value: Any) -> Any:
    """A comparable picture of a result: complex objects by class name, fields and version."""
    if isinstance(value, BaseException):
        return ("raised", type(value).__name__)
    if hasattr(value, "cache_id") and hasattr(value, "settings"):
        return ("a cache object",)
    if type(value).__name__ in ("Transaction", "SqlFieldsCursor", "ScanCursor"):
        return (type(value).__name__,)
    if hasattr(type(value), "schema") and hasattr(value, "version"):
        return ("object", type(value).__name__,
                tuple((f, norm(getattr(value, f, None))) for f in type(value).schema),
                value.version)
    if isinstance(value, dict):
        return (type(value).__name__, tuple(sorted(((norm(k), norm(v)) for k, v in value.items()),
                                                   key=repr)))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(norm(v) for v in value))
    if isinstance(value, decimal.Decimal):
        return ("decimal", value.normalize())
    return value


class Transcript(list):
    def call(self, label: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self.append((label, norm(exc)))
            return exc
        self.append((label, norm(result)))
        return result

    async def acall(self, label: str, coro: Any) -> Any:
        try:
            result = await coro
        except Exception as exc:
            self.append((label, norm(exc)))
            return exc
        self.append((label, norm(result)))
        return result


NOW = datetime.datetime(2024, 5, 17, 13, 45, 12, 345000)
UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def values(lib: Lib) -> list[tuple[str, Any, Any]]:
    """(label, value, value hint) for every kind of value the API carries."""
    d = lib.dt
    return [
        ("int", 42, None), ("neg", -(2**63), None), ("float", 2.5, None), ("str", "zürich ☃", None),
        ("bytes", b"\x00\xff", None), ("true", True, None), ("uuid", UUID, None),
        ("decimal", decimal.Decimal("-123.4500"), None), ("date", NOW, None),
        ("day", NOW.date(), None), ("time", datetime.timedelta(hours=3, milliseconds=5), None),
        ("longs", [1, 2, 3], None), ("doubles", [0.5, 1.5], None), ("strings", ["a", None], None),
        ("bools", [True, False], None), ("uuids", [UUID], None), ("dates", [NOW], None),
        ("decimals", [decimal.Decimal("1.5")], None),
        ("collection", (d.CollectionObject.LINKED_LIST, [1, "2", 3.0]), None),
        ("set", (d.CollectionObject.HASH_SET, [4, 4, "x"]), None),
        ("hashmap", (d.MapObject.HASH_MAP, {"a": 1, 2: "b"}), None),
        ("linkedmap", (d.MapObject.LINKED_HASH_MAP, OrderedDict([(1, "x"), ("k", 2.0)])), None),
        ("objarray", (d.ObjectArrayObject.OBJECT, [7, "8", 9.0]), d.ObjectArrayObject),
        ("timestamp", (NOW, 123456), d.TimestampObject), ("byte", 7, d.ByteObject),
        ("short", 300, d.ShortObject), ("int32", 70000, d.IntObject),
        ("float32", 0.5, d.FloatObject),
        ("char", "Ω", d.CharObject), ("ints", [1, 2], d.IntArrayObject),
        ("shorts", [1, 2], d.ShortArrayObject), ("chars", ["a", "b"], d.CharArrayObject),
        ("floats", [0.5], d.FloatArrayObject), ("bytes-list", [1, 2, 255], d.ByteArrayObject),
        ("enum", (12345, 2), d.EnumObject), ("binenum", (12345, 3), d.BinaryEnumObject),
        ("times", [datetime.timedelta(seconds=1)], d.TimeArrayObject),
        ("timestamps", [(NOW, 5)], d.TimestampArrayObject), ("null", None, None),
    ]


# -- key-value ----------------------------------------------------------------------------------


def kv_values(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    cache = client.get_or_create_cache(f"values-{tag}")
    for label, value, hint in values(lib):
        t.call(f"put {label}", cache.put, label, value, value_hint=hint)
        t.call(f"get {label}", cache.get, label)
    t.call("get_all", cache.get_all, [label for label, _, _ in values(lib)])
    cache.destroy()
    return t


def kv_methods(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    cache = client.get_or_create_cache(f"methods-{tag}")
    c = t.call
    c("get missing", cache.get, "nope")
    c("put", cache.put, "a", 1)
    c("contains", cache.contains_key, "a")
    c("contains_keys", cache.contains_keys, ["a", "b"])
    char = lib.dt.CharObject
    c("put_all", cache.put_all, {"b": 2, "c": [1, 2], ("d", char): ("x", char)})
    c("get_all", cache.get_all, ["a", "b", "c", "zz", ("d", lib.dt.CharObject)])
    c("replace", cache.replace, "a", 10)
    c("replace missing", cache.replace, "zz", 1)
    c("get_and_put", cache.get_and_put, "a", 11)
    c("get_and_put_if_absent", cache.get_and_put_if_absent, "a", 12)
    c("put_if_absent", cache.put_if_absent, "e", 4)
    c("put_if_absent again", cache.put_if_absent, "e", 5)
    c("get_and_replace", cache.get_and_replace, "e", 6)
    c("get_and_remove", cache.get_and_remove, "e")
    c("remove_if_equals no", cache.remove_if_equals, "a", 999)
    c("remove_if_equals", cache.remove_if_equals, "a", 11)
    c("put f", cache.put, "f", 5)
    c("replace_if_equals", cache.replace_if_equals, "f", 5, 50)
    c("get f", cache.get, "f")
    c("remove_key", cache.remove_key, "f")
    c("remove_key again", cache.remove_key, "f")
    c("size", cache.get_size)
    c("size primary", cache.get_size, lib.key_value.PeekModes.PRIMARY)
    modes = lib.key_value.PeekModes
    c("size list", cache.get_size, [modes.PRIMARY, modes.BACKUP])
    c("clear_key", cache.clear_key, "b")
    c("clear_keys", cache.clear_keys, ["c"])
    c("size after clear", cache.get_size)
    c("put_all ints", cache.put_all, {1: 1, 2: 2, 3: 3})
    c("remove_keys", cache.remove_keys, [1])
    c("clear some", cache.clear, [2])
    c("size", cache.get_size)
    c("clear", cache.clear)
    c("put", cache.put, 4, 4)
    c("remove_all", cache.remove_all)
    c("size empty", cache.get_size)
    c("int key", cache.put, 7, "int", key_hint=lib.dt.IntObject)
    c("long key", cache.get, 7)
    c("int key get", cache.get, 7, key_hint=lib.dt.IntObject)
    c("char key", cache.put, "a", "char", key_hint=lib.dt.CharObject)
    c("string key", cache.get, "a")
    c("remove hinted", cache.remove_keys, ["a", ("a", lib.dt.CharObject), (7, lib.dt.IntObject)])
    c("size", cache.get_size)
    cache.destroy()
    return t


def errors(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    c = t.call
    c("missing cache", client.get_cache(f"no-such-{tag}").get, 1)
    c("create", client.create_cache, f"exists-{tag}")
    c("create again", client.create_cache, f"exists-{tag}")
    cache = client.get_cache(f"exists-{tag}")
    c("empty list", cache.put, 1, [])
    c("mixed list", cache.put, 1, [1, "a", 2.0])
    c("bad sql", lambda: list(client.sql("SELEKT nonsense")))
    c("missing table", lambda: list(client.sql(f"SELECT * FROM no_table_{tag.replace('-', '_')}")))
    c("get_cache with config", client.get_cache, {lib.prop_codes.PROP_NAME: "x",
                                                  lib.prop_codes.PROP_BACKUPS_NUMBER: 1})
    c("settings without name", client.create_cache, {lib.prop_codes.PROP_BACKUPS_NUMBER: 1})
    c("unknown property", client.create_cache, {lib.prop_codes.PROP_NAME: "x", 99999: 1})
    c("bad isolation", client.tx_start, isolation=17)
    c("float tx timeout", client.tx_start, timeout=1.0)
    c("destroy", cache.destroy)
    c("destroyed get", cache.get, 1)
    return t


# -- administration -----------------------------------------------------------------------------


def admin(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    p, cc = lib.prop_codes, lib.cache_config
    name = f"admin-{tag}"
    settings = {
        p.PROP_NAME: name, p.PROP_CACHE_MODE: cc.CacheMode.REPLICATED,
        p.PROP_CACHE_ATOMICITY_MODE: cc.CacheAtomicityMode.TRANSACTIONAL,
        p.PROP_BACKUPS_NUMBER: 2, p.PROP_WRITE_SYNCHRONIZATION_MODE:
            cc.WriteSynchronizationMode.FULL_SYNC,
        p.PROP_COPY_ON_READ: False, p.PROP_READ_FROM_BACKUP: False,
        p.PROP_SQL_SCHEMA: f"S_{tag.upper().replace('-', '_')}",
        p.PROP_QUERY_ENTITIES: [{
            "table_name": "ITEMS", "key_field_name": "ID", "key_type_name": "java.lang.Integer",
            "value_field_name": None, "value_type_name": f"Item_{tag}",
            "field_name_aliases": [], "query_indexes": [],
            "query_fields": [
                {"name": "ID", "type_name": "java.lang.Integer", "is_key_field": True,
                 "is_notnull_constraint_field": True},
                {"name": "LABEL", "type_name": "java.lang.String"},
            ],
        }],
    }
    cache = t.call("create with config", client.create_cache, settings)
    t.call("names", lambda: name in client.get_cache_names())
    config = cache.settings
    t.append(("name", config.get(p.PROP_NAME) == name))
    for code in sorted(settings):
        if code not in (p.PROP_QUERY_ENTITIES, p.PROP_NAME, p.PROP_SQL_SCHEMA):
            t.append((f"setting {code}", norm(config.get(code))))
    entity = config[p.PROP_QUERY_ENTITIES][0]
    t.append(("entity", norm({k: entity[k] for k in ("table_name", "key_field_name",
                                                      "key_type_name")})))
    t.append(("value type", entity["value_type_name"] == f"Item_{tag}"))
    t.append(("fields", norm([(f["name"], f["type_name"]) for f in entity["query_fields"]])))
    t.call("get_or_create existing", client.get_or_create_cache, name)
    t.call("destroy", cache.destroy)
    t.call("gone", lambda: name in client.get_cache_names())
    return t


def cluster(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    t.call("state", client.get_cluster().get_state)
    t.call("set active", client.get_cluster().set_state, lib.dt.ClusterState.ACTIVE)
    t.call("state again", client.get_cluster().get_state)
    return t


# -- queries ------------------------------------------------------------------------------------


def sql(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    table = f"City_{tag.replace('-', '_')}"
    c = t.call
    c("create table", lambda: list(client.sql(
        f"CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR, population BIGINT, "
        "area DECIMAL(10, 2), founded TIMESTAMP)")))  # DATE columns: pyignite cannot read them
    for i in range(10):
        c(f"insert {i}", lambda i=i: list(client.sql(
            f"INSERT INTO {table} (id, name, population, area, founded) VALUES (?, ?, ?, ?, ?)",
            query_args=[i, f"city {i}", 1000 * i, decimal.Decimal(f"{i}.25"),
                        ((datetime.datetime(2000, 1, 1 + i), 0), lib.dt.TimestampObject)])))
    c("select all", lambda: list(client.sql(f"SELECT * FROM {table} ORDER BY id",
                                             include_field_names=True, page_size=3)))
    c("select args", lambda: list(client.sql(
        f"SELECT name, population FROM {table} WHERE id > ? ORDER BY id", query_args=[6])))
    c("aggregate", lambda: list(client.sql(f"SELECT COUNT(*), SUM(population) FROM {table}")))
    c("max rows", lambda: list(client.sql(f"SELECT id FROM {table} ORDER BY id", max_rows=4)))
    c("update", lambda: list(client.sql(f"UPDATE {table} SET name = ? WHERE id < 3",
                                         query_args=["renamed"])))
    c("cache=", lambda: list(client.sql(f"SELECT name FROM {table} WHERE id = 1",
                                         cache=f"SQL_PUBLIC_{table.upper()}")))
    cursor = client.sql(f"SELECT id FROM {table} ORDER BY id", page_size=2)
    c("first row", next, cursor)
    c("close", cursor.close)
    c("first row with names", lambda: next(iter(client.sql(
        f"SELECT id AS ident FROM {table}", include_field_names=True))))
    c("scan of the table", lambda: sorted(
        ((k, (v.NAME, v.POPULATION)) for k, v in client.get_cache(
            f"SQL_PUBLIC_{table.upper()}").scan(page_size=4)), key=repr))
    c("drop", lambda: list(client.sql(f"DROP TABLE {table}")))
    return t


def scan(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    cache = client.create_cache(f"scan-{tag}")
    cache.put_all({f"key_{i}": i for i in range(20)})
    for page in (1, 3, 100):
        with cache.scan(page_size=page) as cursor:
            t.append((f"scan page {page}", norm(sorted(cursor))))
    with cache.scan(page_size=2) as cursor:
        t.append(("dict", norm(dict(cursor))))
    cursor = cache.scan(page_size=2)
    t.call("one", lambda: next(cursor)[0] in {f"key_{i}" for i in range(20)})
    t.call("close early", cursor.close)
    cache.destroy()
    return t


def select_row(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    p = lib.prop_codes
    name = f"SQL_PUBLIC_STUDENT_{tag.upper().replace('-', '_')}"
    type_name = f"STUDENT_TYPE_{tag.upper().replace('-', '_')}"
    cache = client.create_cache({
        p.PROP_NAME: name, p.PROP_SQL_SCHEMA: "PUBLIC",
        p.PROP_QUERY_ENTITIES: [{
            "table_name": f"STUDENT_{tag.upper().replace('-', '_')}", "key_field_name": "SID",
            "key_type_name": "java.lang.Integer", "field_name_aliases": [], "query_indexes": [],
            "value_type_name": type_name, "value_field_name": None,
            "query_fields": [
                {"name": "SID", "type_name": "java.lang.Integer", "is_key_field": True,
                 "is_notnull_constraint_field": True},
                {"name": "NAME", "type_name": "java.lang.String"},
                {"name": "AGE", "type_name": "java.lang.Integer"},
            ]}]})

    class Student(metaclass=lib.GenericObjectMeta, type_name=type_name, schema=OrderedDict([
            ("NAME", lib.dt.String), ("AGE", lib.dt.IntObject)])):
        pass

    for i in range(5):
        t.call(f"put {i}", cache.put, i, Student(NAME=f"s{i}", AGE=20 + i),
               key_hint=lib.dt.IntObject)
    t.call("select_row", lambda: sorted(
        ((k, v.NAME, v.AGE) for k, v in cache.select_row("AGE > ?", query_args=[21]))))
    t.call("sql", lambda: list(client.sql(
        f"SELECT SID, NAME FROM STUDENT_{tag.upper().replace('-', '_')} ORDER BY SID",
        include_field_names=True)))
    cache.destroy()
    return t


# -- transactions -------------------------------------------------------------------------------


def transactions(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    p, cc = lib.prop_codes, lib.cache_config
    cache = client.get_or_create_cache({
        p.PROP_NAME: f"tx-{tag}",
        p.PROP_CACHE_ATOMICITY_MODE: cc.CacheAtomicityMode.TRANSACTIONAL})
    time.sleep(1)  # IGNITE-14868: a new transactional cache may not be ready at once
    iso = lib.dt.TransactionIsolation
    con = lib.dt.TransactionConcurrency
    with client.tx_start(isolation=iso.REPEATABLE_READ, concurrency=con.PESSIMISTIC) as tx:
        cache.put(1, "success")
        tx.commit()
    t.call("committed", cache.get, 1)
    try:
        with client.tx_start():
            cache.put(1, "fail")
            raise RuntimeError("test")
    except RuntimeError:
        pass
    t.call("rolled back on error", cache.get, 1)
    tx = client.tx_start(concurrency=con.OPTIMISTIC, isolation=iso.SERIALIZABLE, label="lbl")
    cache.put(2, "in tx")
    t.call("rollback", tx.rollback)
    t.call("after rollback", cache.get, 2)
    t.call("commit after close", tx.commit)
    try:
        with client.tx_start(timeout=300, label="long-tx") as tx:
            cache.put(1, "fail")
            time.sleep(1.0)
            tx.commit()
        t.append(("timed out", "no error"))
    except Exception as exc:
        t.append(("timed out", type(exc).__name__,
                  "long-tx" in str(exc) or "timed out" in str(exc).lower()))
    t.call("after timeout", cache.get, 1)
    cache.destroy()
    return t


# -- complex objects ----------------------------------------------------------------------------


def binary_objects(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    d = lib.dt
    type_name = f"Person_{tag}"

    class Person(metaclass=lib.GenericObjectMeta, type_name=type_name, schema=OrderedDict([
            ("first_name", d.String), ("last_name", d.String), ("age", d.IntObject),
            ("born", d.DateObject), ("tags", d.StringArrayObject),
            ("salary", d.DecimalObject), ("boss", d.BinaryObject)])):
        pass

    cache = client.get_or_create_cache(f"people-{tag}")
    boss = Person(first_name="Big", last_name="Boss", age=60)
    ivan = Person(first_name="Ivan", last_name="Ivanov", age=33, born=NOW, tags=["a", "b"],
                  salary=decimal.Decimal("1000.50"), boss=boss)
    t.call("put", cache.put, 1, ivan)
    got = t.call("get", cache.get, 1)
    t.append(("same class", type(got) is Person))
    t.call("query_binary_type", lambda: sorted(client.query_binary_type(type_name)))
    t.call("get_binary_type", lambda: _binary_type(client.get_binary_type(type_name)))
    t.call("as key", cache.put, Person(first_name="key"), "value by object key")
    t.call("object key get", cache.get, Person(first_name="key"))
    # (pyignite 0.6.1 cannot put an enum type: struct.error; see test_enum_types_libclient)
    cache.destroy()
    return t


def _binary_type(info: dict) -> Any:
    info = dict(info)
    info["schemas"] = [[(k, v.__name__) for k, v in s.items()] for s in info.get("schemas", [])]
    info.pop("type_id", None)
    if "type_name" in info:  # drop the per-run tag
        info["type_name"] = info["type_name"].rsplit("_", 1)[0]
    return info


def read_binary(lib: Lib, client: Any, tag: str) -> Transcript:
    """examples/read_binary.py: objects of SQL-made types read without registering a class."""
    t = Transcript()
    table = f"Country_{tag.replace('-', '_')}"
    list(client.sql(f"CREATE TABLE {table} (Code CHAR(3), Name CHAR(52), "
                    f"Population INT, PRIMARY KEY (Code, Name))"))
    list(client.sql(f"INSERT INTO {table} (Code, Name, Population) VALUES (?, ?, ?)",
                    query_args=["USA", "United States", 278357000]))
    cache = client.get_cache(f"SQL_PUBLIC_{table.upper()}")
    with cache.scan() as cursor:
        key, value = next(cursor)
    t.append(("key", norm(key)[2:], type(key).__name__.endswith("_KEY")))
    t.append(("value", norm(value)[2:]))
    row = next(iter(client.sql(f"SELECT _KEY, _VAL FROM {table}")))
    t.append(("sql _KEY/_VAL", norm(row[0])[2:], norm(row[1])[2:]))
    list(client.sql(f"DROP TABLE {table}"))
    return t


def expiry(lib: Lib, client: Any, tag: str) -> Transcript:
    """examples/expiry_policy.py (with integer milliseconds: pyignite refuses floats)."""
    t = Transcript()
    p = lib.prop_codes
    ttl_cache = client.create_cache({p.PROP_NAME: f"ttl-{tag}",
                                     p.PROP_EXPIRY_POLICY: lib.dt.ExpiryPolicy(create=400)})
    t.call("policy", lambda: ttl_cache.settings[p.PROP_EXPIRY_POLICY].create)
    ttl_cache.put(1, 1)
    t.call("at once", ttl_cache.get, 1)
    time.sleep(1.0)
    t.call("expired", ttl_cache.get, 1)
    ttl_cache.destroy()
    simple = client.create_cache(f"ttl2-{tag}")
    view = simple.with_expire_policy(access=datetime.timedelta(milliseconds=400))
    t.call("float ttl refused", simple.with_expire_policy, access=1.0)
    view.put(1, 1)
    t.call("view at once", view.get, 1)
    time.sleep(1.0)
    t.call("view expired", view.get, 1)
    simple.put(2, 2)
    time.sleep(0.5)
    t.call("plain kept", simple.get, 2)
    simple.destroy()
    return t


def type_hints(lib: Lib, client: Any, tag: str) -> Transcript:
    """examples/type_hints.py."""
    t = Transcript()
    cache = client.get_or_create_cache(f"my cache {tag}")
    cache.put("my key", 42)
    cache.put("my key", 42, value_hint=lib.dt.ShortObject)
    cache.put("a", 1)
    cache.put("a", 2, key_hint=lib.dt.CharObject)
    t.call("default key", cache.get, "a")
    t.call("char key", cache.get, "a", key_hint=lib.dt.CharObject)
    t.call("remove both", cache.remove_keys, ["a", ("a", lib.dt.CharObject)])
    t.call("size", cache.get_size)
    cache.destroy()
    return t


def get_and_put_complex(lib: Lib, client: Any, tag: str) -> Transcript:
    """examples/get_and_put_complex.py."""
    t = Transcript()
    d = lib.dt
    cache = client.get_or_create_cache(f"complex {tag}")
    value = OrderedDict([(1, "test"), ("key", 2.0)])
    cache.put("my dict", (d.MapObject.LINKED_HASH_MAP, value))
    t.call("linked", cache.get, "my dict")
    cache.put("my dict", (d.MapObject.HASH_MAP, value))
    t.call("hash", cache.get, "my dict")
    cache.put("my list", (d.CollectionObject.LINKED_LIST, [1, "2", 3.0]))
    t.call("list", cache.get, "my list")
    cache.put("my set", (d.CollectionObject.HASH_SET, [4, 4, "test", 5.6]))
    t.call("set", lambda: sorted(map(repr, cache.get("my set")[1])))
    cache.put("my array of objects", (d.ObjectArrayObject.OBJECT, [7, "8", 9.0]),
              value_hint=d.ObjectArrayObject)
    t.call("object array", cache.get, "my array of objects")
    cache.destroy()
    return t


def migrate_binary(lib: Lib, client: Any, tag: str) -> Transcript:
    """examples/migrate_binary.py: read objects, write them back with a new schema."""
    t = Transcript()
    d = lib.dt
    type_name = f"ExpenseVoucher_{tag}"
    old_schema = OrderedDict([("date", d.DateObject), ("reported", d.BoolObject),
                              ("purpose", d.String), ("sum", d.DecimalObject),
                              ("recipient", d.String), ("cashier_id", d.LongObject)])

    class ExpenseVoucher(metaclass=lib.GenericObjectMeta, type_name=type_name,
                         schema=old_schema):
        pass

    cache = client.get_or_create_cache(f"accounting-{tag}")
    for i in range(1, 4):
        cache.put(i, ExpenseVoucher(date=datetime.datetime(2017, 9, 20 + i), reported=i != 2,
                                    purpose=f"purpose {i}", sum=decimal.Decimal(f"{i}00.5"),
                                    recipient="John Doe", cashier_id=8 + i))
    classes = client.query_binary_type(type_name)
    t.append(("classes", len(classes)))
    schema = ExpenseVoucher.schema
    schema["expense_date"] = schema.pop("date")
    schema["report_date"] = d.DateObject
    del schema["reported"]

    class ExpenseVoucherV2(metaclass=lib.GenericObjectMeta, type_name=type_name,
                           schema=schema):
        pass

    with cache.scan() as cursor:
        for key, old in sorted(cursor, key=lambda kv: kv[0]):
            new = ExpenseVoucherV2()
            new.sum, new.purpose, new.recipient = old.sum, old.purpose, old.recipient
            new.cashier_id, new.expense_date = old.cashier_id, old.date
            new.report_date = datetime.datetime(2022, 5, 6) if old.reported else None
            cache.put(key, new)
            t.call(f"migrated {key}", cache.get, key)
    t.call("classes after", lambda: len(client.query_binary_type(type_name)))
    cache.destroy()
    return t


SYNC = [kv_values, kv_methods, errors, admin, cluster, sql, scan, select_row, transactions,
        binary_objects, read_binary, expiry, type_hints, get_and_put_complex, migrate_binary]


# -- asyncio ------------------------------------------------------------------------------------


async def aio_key_value(lib: Lib, client: Any, tag: str) -> Transcript:
    """examples/async_key_value.py."""
    t = Transcript()
    cache = await client.get_or_create_cache(f"test_async_cache_{tag}")
    await asyncio.gather(*[cache.put(f"key_{i}", f"value_{i}") for i in range(200)])
    await t.acall("get", cache.get("key_10"))
    await t.acall("get_all", cache.get_all([f"key_{i}" for i in range(10)]))
    await t.acall("gather gets", asyncio.gather(*[cache.get(f"key_{i}") for i in range(200)]))
    async with cache.scan() as cursor:
        t.append(("scan", norm(sorted([tuple(kv) async for kv in cursor]))))
    await t.acall("size", cache.get_size())
    name = await _first(cache.settings(), lib.prop_codes.PROP_NAME)
    t.append(("settings name", name == f"test_async_cache_{tag}"))
    await t.acall("missing", (await client.get_cache(f"none-{tag}")).get(1))
    await cache.destroy()
    return t


async def _first(coro: Any, key: Any) -> Any:
    return (await coro)[key]


async def aio_sql(lib: Lib, client: Any, tag: str) -> Transcript:
    """examples/async_sql.py (shortened)."""
    t = Transcript()
    table = f"ACity_{tag.replace('-', '_')}"
    await client.sql(f"CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR, pop INT)")
    await asyncio.gather(*[client.sql(f"INSERT INTO {table} VALUES (?, ?, ?)",
                                      query_args=[i, f"c{i}", i * 10]) for i in range(25)])
    async with client.sql(f"SELECT name, pop FROM {table} ORDER BY pop DESC LIMIT 10",
                          include_field_names=True, page_size=3) as cursor:
        t.append(("names", norm(await cursor.__anext__())))
        t.append(("rows", norm([row async for row in cursor])))
    cursor = client.sql(f"SELECT * FROM {table}")
    try:
        await cursor.__anext__()
    except Exception as exc:
        t.append(("uninitialized", type(exc).__name__))
    await client.sql(f"DROP TABLE {table}")
    return t


async def aio_transactions(lib: Lib, client: Any, tag: str) -> Transcript:
    t = Transcript()
    p, cc = lib.prop_codes, lib.cache_config
    cache = await client.get_or_create_cache({
        p.PROP_NAME: f"atx-{tag}",
        p.PROP_CACHE_ATOMICITY_MODE: cc.CacheAtomicityMode.TRANSACTIONAL})
    await asyncio.sleep(1)

    async def one(n: int) -> None:
        async with client.tx_start() as tx:
            await cache.put(n, f"v{n}")
            if n % 2 == 0:
                await tx.commit()

    await asyncio.gather(*[one(n) for n in range(20)])
    await t.acall("committed evens", cache.get_all(list(range(20))))
    await cache.destroy()
    return t


ASYNC = [aio_key_value, aio_sql, aio_transactions]
