"""A structure-aware fuzz harness for a live broker (issue 10, "Proof"): hostile workers send
mutated requests for every op of the broker's handler tables over unix:// or ipc:// while a
well-behaved libclient worker checks its values, and the broker, its node connections and the
Ignite nodes are watched for harm.

    python -m tests.integration.fuzz_broker --transport both --count 100000 --seed 1 \
        --report fuzz-report.json

It starts its own 2-node dev cluster (``--base-port``, default 14800) and broker subprocess, or
attaches to given ones (``--attach-cluster``, ``--attach-broker``).  Every input is a pure
function of ``(seed, index)``: ``--replay INDEX`` sends that one input again and says what it
did.  Traffic stays on this machine (Unix sockets; the nodes on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import dataclasses
import decimal
import itertools
import json
import math
import multiprocessing
import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import zmq

from broker import ops_admin, ops_kv, ops_query
from broker.admin import AdminError
from broker.admin import query as admin_query
from broker.devcluster import DevCluster
from broker.devcluster.brokerproc import BrokerProcess
from broker.sqlhead import starts_or_stops_a_cache
from protocol import hashing, ipc
from protocol.binary.typecodes import TypeCode
from protocol.binary.values import (
    BinaryObject,
    Collection,
    Date,
    EnumValue,
    Map,
    ObjectArray,
    Time,
    Timestamp,
    Typed,
)
from protocol.ipcstream import MessageReader, Oversized, frame, stream_path

# -- the ops under test: the broker's own handler tables ------------------------------------

#: Every op the broker serves, from its handler tables (not retyped here).
OPS: tuple[str, ...] = tuple(sorted({*ops_kv.HANDLERS, *ops_query.HANDLERS, *ops_admin.HANDLERS}))

HOSTILE_CACHES = tuple(f"fuzz-{i}" for i in range(4))
#: Ops that may start or stop a cache (a partition map exchange that holds every cache
#: operation of the cluster while it runs).
CACHE_CHANGE_OPS = frozenset({"cache_create", "cache_get_or_create", "cache_destroy"})
TYPE_NAMES = ("FuzzType0", "FuzzType1", "FuzzEnum0")
STATUS_NAMES = {int(s): s.name for s in ipc.Status}
REQUEST_DEADLINE_S = 10.0  # hostile requests carry now + this as their deadline
GRACE_S = 3.0  # beyond its deadline, a request without a reply is "unanswered"
LATE_WAIT_S = 15.0  # after the last input, how long an unanswered request's reply is awaited
UNRESPONSIVE_S = 30.0  # no node connection ready this long, JVMs alive: the cluster hangs
BROKER_REQUEST_TIMEOUT_S = 10.0  # limits.request_timeout (and max_request_timeout) of its broker
KEPT_LOGS = Path(os.environ.get("IGNITE_BROKER_KEPT_LOGS", "/tmp/ignite-broker-kept-logs"))
TELLING_LINE = re.compile(r"SEVERE|ERROR|Critical system error|OutOfMemory|FailureHandler|halt",
                          re.IGNORECASE)
TELLING_LINE_CHARS = 600  # a node prints huge keys in some errors: the start says what it was
TELLING_LINES = 40

# Argument kinds; a leading "?" marks an optional argument (sent about half the time).
_KV_KINDS = {"key": "key", "value": "value", "sample": "value", "keys": "keys",
             "pairs": "pairs", "peek_modes": "peek_modes"}
_BOOLS = ("distributed_joins", "local", "replicated_only", "enforce_join_order", "collocated",
          "lazy", "include_field_names")
# fmt: off
_OTHER_SPECS: dict[str, dict[str, str]] = {
    "tx_start": {"?concurrency": "enum:0,1", "?isolation": "enum:0,1,2", "?timeout": "ms",
                 "?label": "str_or_none"},
    "tx_end": {"tx": "tx", "commit": "bool"},
    "sql": {"query": "sql", "?args": "sql_args", "?schema": "str_or_none", "?cache": "cache",
            "?page_size": "count", "?statement_type": "enum:0,1,2", "?max_rows": "count",
            "?timeout": "ms", "?tx": "tx", **{f"?{b}": "bool" for b in _BOOLS}},
    "scan": {"cache": "cache", "?page_size": "count", "?partitions": "partition",
             "?local": "bool", "?tx": "tx"},
    "select_row": {"cache": "cache", "table": "table", "query": "where", "?args": "sql_args",
                   "?page_size": "count", "?timeout": "ms", "?distributed_joins": "bool",
                   "?replicated_only": "bool", "?local": "bool"},
    "cursor_next": {"cursor": "cursor"},
    "cursor_close": {"cursor": "cursor"},
    "binary_type_get": {"type": "type_ref"},
    "binary_type_put": {"type_name": "type_name", "?affinity_key_field": "str_or_none",
                        "?is_enum": "bool", "schema": "schema"},
    "node_for": {"?cache": "cache", "?key": "key"},
    "hello": {"?nodes": "nodes"},
    "ping": {},
    "cache_names": {},
    "cache_create": {"?name": "cache_name", "?config": "config"},
    "cache_get_or_create": {"?name": "cache_name", "?config": "config"},
    "cache_config": {"cache": "cache"},
    "cache_destroy": {"cache": "cache"},
    "cluster_get_state": {},
    "cluster_set_state": {"state": "state"},
    "cluster_wal": {"cache": "cache_name", "?enable": "bool_or_none"},
}
# fmt: on
#: Ops whose frames are never byte-mutated: a flipped bit could make a valid request that
#: harms the cluster legitimately (deactivating it), which is not what we look for.
_NO_BYTE_MUTATION = frozenset({"cluster_set_state"})


def arg_specs(op: str) -> dict[str, str]:
    """The arguments of ``op`` and their kinds (a new op without a spec gets generic args)."""
    spec = ops_kv.KEY_VALUE_OPS.get(op)
    if spec is not None:
        kinds = {p: _KV_KINDS.get(p, "value") for p in spec.params}
        return {"cache": "cache", **kinds, "?tx": "tx", "?expiry": "expiry"}
    return _OTHER_SPECS.get(op, {"?cache": "cache", "?key": "key", "?value": "value"})


# -- values -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Raw:
    """Pre-encoded msgpack put verbatim into a request (deep nesting, broken ext payloads)."""

    data: bytes
    label: str

    def __repr__(self) -> str:
        return f"<{self.label}, {len(self.data)} bytes of msgpack>"


@dataclasses.dataclass(frozen=True)
class Blob:
    """A long str or bytes, described by its size in reports."""

    value: str | bytes

    def __repr__(self) -> str:
        return f"<{type(self.value).__name__} of {len(self.value)}>"


EXTREME_INTS = (0, -1, 1, 2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**63 - 1, -2**63, 2**63,
                2**64 - 1, 2**32, 2**15, -2**15 - 1, 255, 256, 65535, 65536, 2**53 + 1)
ODD_FLOATS = (math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324, 0.5)
VALID_TYPED_CODES = tuple(int(c) for c in TypeCode)
MSGPACK_MARKERS = (0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xC3,
                   0xC4, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCF, 0xD3, 0xD4, 0xD8, 0xD9, 0xDB,
                   0xDC, 0xDD, 0xDE, 0xDF, 0xE0, 0xFF)


def raw_ext(code: int, payload: bytes) -> Raw:
    """An ext value of any code, negative ones included (msgpack.ExtType refuses those)."""
    n = len(payload)
    head = b"\xc7" + bytes([n]) if n < 256 else b"\xc9" + struct.pack(">I", n)
    return Raw(head + struct.pack(">b", code) + payload, f"ext {code} of {payload!r:.40}")


def _key(rng: random.Random) -> Any:
    return rng.choice((rng.randrange(64), f"k{rng.randrange(64)}"))


def _valid_value(rng: random.Random) -> Any:
    pick = rng.randrange(16)
    return (
        rng.randrange(-1000, 1000), f"v{rng.randrange(1000)}", rng.randbytes(rng.randrange(8)),
        rng.random(), rng.random() < 0.5, None, uuid.UUID(int=rng.getrandbits(128)),
        decimal.Decimal(rng.randrange(-10**6, 10**6)).scaleb(-rng.randrange(6)),
        Timestamp(rng.randrange(2**41), rng.randrange(10**6)), Date(rng.randrange(2**41)),
        Time(rng.randrange(86_400_000)), Typed(3, rng.randrange(-2**31, 2**31)),
        Collection(1, [rng.randrange(9) for _ in range(3)]), Map(1, [(1, "a"), (2, "b")]),
        ObjectArray(-1, [1, "x", None]),
        BinaryObject(hashing.type_id(TYPE_NAMES[0]), {"a": Typed(3, 1), "b": "s"},
                     type_name=TYPE_NAMES[0]),
    )[pick]


def _valid(kind: str, rng: random.Random, ctx: GenContext) -> Any:
    """A valid value for an argument of ``kind``."""
    if kind.startswith("enum:"):
        return int(rng.choice(kind[5:].split(",")))
    simple: dict[str, Callable[[], Any]] = {
        "cache": lambda: (rng.choice(HOSTILE_CACHES) if rng.random() < 0.9
                          else hashing.cache_id(rng.choice(HOSTILE_CACHES))),
        "cache_name": lambda: rng.choice(HOSTILE_CACHES),
        "key": lambda: _key(rng),
        "value": lambda: _valid_value(rng),
        "keys": lambda: [_key(rng) for _ in range(rng.randrange(5))],
        "pairs": lambda: [[_key(rng), _valid_value(rng)] for _ in range(rng.randrange(5))],
        "peek_modes": lambda: rng.choice(([], [0], [2], [2, 3])),
        "expiry": lambda: rng.choice(([-2, -2, -2], [60_000, -1, -2], [-1, -1, -1])),
        "tx": lambda: ctx.handle(rng, "tx"),
        "cursor": lambda: ctx.handle(rng, "cursor"),
        "bool": lambda: rng.random() < 0.5,
        "bool_or_none": lambda: rng.choice((True, None)),
        "count": lambda: rng.choice((1, 10, 100, 1024)),
        "ms": lambda: rng.choice((0, 100, 5000)),
        "str_or_none": lambda: rng.choice((None, "PUBLIC", "fuzz")),
        "sql": lambda: rng.choice(("SELECT 1", "SELECT ? + 1", "SELECT * FROM FUZZ_T",
                                   # cache starts and stops through SQL (no DML on FUZZ_DDL)
                                   "CREATE TABLE IF NOT EXISTS FUZZ_DDL (ID INT PRIMARY KEY)",
                                   "/* c */ DROP TABLE IF EXISTS FUZZ_DDL")),
        "where": lambda: rng.choice(("id > ?", "1 = 1")),
        "table": lambda: "FUZZ_T",
        "sql_args": lambda: [rng.randrange(100)],
        "partition": lambda: rng.choice((-1, 0, 1023)),
        "type_ref": lambda: rng.choice((rng.choice(TYPE_NAMES),
                                        hashing.type_id(rng.choice(TYPE_NAMES)))),
        "type_name": lambda: rng.choice(TYPE_NAMES),
        "schema": lambda: [["a", 3], ["b", 9]],
        "nodes": lambda: list(ctx.node_addresses[:rng.randrange(len(ctx.node_addresses) + 1)]),
        "state": lambda: 1,
        "config": lambda: {0: rng.choice(HOSTILE_CACHES), 1: 2, 3: rng.randrange(2)},
    }
    maker = simple.get(kind)
    return maker() if maker is not None else _valid_value(rng)


def _wrong_type(rng: random.Random) -> Any:
    return rng.choice((
        None, True, False, 0, -1, 1.5, math.nan, "", "x", "a" * 100, b"", b"\x00\xff", [], [1],
        [[]], [None, None], {}, {"a": 1}, {1: 2}, {b"k": 1}, {None: None},
        raw_ext(rng.randrange(-128, 128), rng.randbytes(rng.randrange(20))),
        Typed(rng.choice(VALID_TYPED_CODES), None), uuid.UUID(int=0), decimal.Decimal("1.5"),
        Collection(1, []), Map(2, []), ObjectArray(-1, []), EnumValue(1, 1),
        Timestamp(-1, -1), Date(-2**63), Time(-1),
    ))


def _huge(rng: random.Random, limit: int) -> Any:
    """Long strings, bytes and lists, up to and just past the request limit."""
    size = rng.choice((4096, 65536, limit // 4, limit - 256, limit + 16))
    pick = rng.randrange(5)
    if pick == 0:
        return Blob("s" * size)
    if pick == 1:
        return Blob(b"\xab" * size)
    if pick == 2:
        return Blob("\u00e9" * (size // 2))  # 2 bytes each in UTF-8
    if pick == 3:
        return Raw(b"\xdd" + struct.pack(">I", size) + b"\x01" * size, f"list of {size} ints")
    return Raw(b"\xdf" + struct.pack(">I", size // 2) + b"\x01\x02" * (size // 2),
               f"map of {size // 2} int pairs")


def _nest_level(kind: str, inner: bytes) -> bytes:
    """One level of nesting around the msgpack bytes ``inner``."""
    if kind == "list":
        return b"\x91" + inner
    if kind == "map":
        return b"\x81\xa1k" + inner
    if kind == "typed":  # TYPED Object[] holding the inner value
        payload = b"\x92\x17\x91" + inner
        code = ipc.ExtCode.TYPED
    elif kind == "object":
        payload = b"\x93\xa9FuzzType1" + msgpack.packb(hashing.type_id("FuzzType1")) + \
            b"\x81\xa1a" + inner
        code = ipc.ExtCode.OBJECT
    elif kind == "object_array":
        payload = b"\x92\xff\x91" + inner
        code = ipc.ExtCode.OBJECT_ARRAY
    elif kind == "ext_map":
        payload = b"\x92\x01\x91\x92\x01" + inner
        code = ipc.ExtCode.MAP
    else:  # collection
        payload = b"\x92\x01\x91" + inner
        code = ipc.ExtCode.COLLECTION
    return msgpack.packb(msgpack.ExtType(code, payload))


_NEST_KINDS = ("collection", "ext_map", "object", "object_array", "typed", "list", "map")


def _deep(rng: random.Random, plain: bool = False) -> Raw:
    """A value nested up to thousands of levels: ext containers and mixes with plain lists and
    maps, or (``plain``) plain lists and maps only."""
    depth = rng.choice((16, 64, 100, 150, 200, 300, 500, 1000, 3000))
    style = rng.choice(("list", "map") if plain else (*_NEST_KINDS[:5], "mixed_ext", "mixed"))
    data = msgpack.packb(rng.randrange(10))
    kinds = []
    for _ in range(depth):
        if style == "mixed_ext":
            kind = rng.choice(_NEST_KINDS[:5])
        elif style == "mixed":
            kind = rng.choice(_NEST_KINDS)
        else:
            kind = style
        kinds.append(kind)
        data = _nest_level(kind, data)
    return Raw(data, f"{style} nested {depth} deep")


def _bad_kind(rng: random.Random) -> Any:
    kind = rng.choice((-128, -2, 6, 7, 99, 127, 128, 2**31, -2**31 - 1, 2**63))
    items = [rng.randrange(5) for _ in range(rng.randrange(4))]
    if rng.random() < 0.5:
        return Raw(msgpack.packb(msgpack.ExtType(ipc.ExtCode.COLLECTION,
                                                 msgpack.packb([kind, items]))),
                   f"COLLECTION of kind {kind}")
    mkind = rng.choice((0, -1, 3, 127, 2**31))
    return Raw(msgpack.packb(msgpack.ExtType(ipc.ExtCode.MAP,
                                             msgpack.packb([mkind, [[1, 2]]]))),
               f"MAP of kind {mkind}")


def _bad_typed(rng: random.Random) -> Any:
    """TYPED with an unknown code, or a known code holding a value of the wrong shape."""
    code = rng.choice((0, 26, 39, 100, 102, 104, -1, -2, 127, 2**31, -2**63,
                       *VALID_TYPED_CODES))
    value = rng.choice((None, 2**40, -2**63, 2**64 - 1, "x" * 3, b"\x00", [1, "a"],
                        [[1]], {"a": 1}, 1.5, math.nan, [2**70 % 2**64] * 3, True))
    return Raw(msgpack.packb(msgpack.ExtType(ipc.ExtCode.TYPED, msgpack.packb([code, value]))),
               f"TYPED[{code}, {value!r:.30}]")


def _decimal(rng: random.Random, limit: int) -> Raw:
    pick = rng.randrange(6)
    if pick == 0:
        digits = rng.choice((40, 1000, 20_000, 100_000, limit // 16, limit // 4))
        text = "9" * digits
    elif pick == 1:
        text = f"1E+{rng.choice((400, 10**4, 10**6, 10**8, 999999999))}"
    elif pick == 2:
        text = f"1E-{rng.choice((400, 10**4, 10**6, 999999999))}"
    elif pick == 3:
        text = rng.choice(("NaN", "-Infinity", "sNaN", "", "1.2.3", "-0", "0E-2147483649"))
    elif pick == 4:
        text = "0." + "1" * rng.choice((1000, 50_000))
    else:
        return Raw(msgpack.packb(msgpack.ExtType(ipc.ExtCode.DECIMAL, rng.randbytes(8))),
                   "DECIMAL of random bytes")
    return Raw(msgpack.packb(msgpack.ExtType(ipc.ExtCode.DECIMAL, text.encode())),
               f"DECIMAL {text[:20]}{'...' if len(text) > 20 else ''} ({len(text)} chars)")


def _bad_ext(rng: random.Random) -> Raw:
    """A known ext code with a payload of the wrong shape, or an unknown ext code."""
    code = rng.choice((*range(0, 13), -1, 127, -128))
    payload = rng.choice((b"", b"\xc1", rng.randbytes(rng.randrange(1, 40)),
                          msgpack.packb([]), msgpack.packb([None] * 3),
                          msgpack.packb({"a": 1}), msgpack.packb([1, 2, 3, 4, 5]),
                          msgpack.packb(["x", "y", "z"]), msgpack.packb([2**64 - 1, -1])))
    return raw_ext(code, payload)


def _bad_enum(kind: str, rng: random.Random) -> Any:
    if kind.startswith("enum:") or kind in ("state", "partition"):
        return rng.choice((-1, 3, 4, 99, 127, 128, 1024, 2**31, -2**31 - 1, 2**63))
    if kind == "peek_modes":
        return [rng.choice((-1, 6, 7, 2**31, 2**63))]
    if kind == "expiry":
        return [rng.choice((-5, -3, 2**63 - 1, -2**63, 2**64 - 1, 0)) for _ in range(3)]
    if kind == "schema":
        return [["a", rng.choice((0, 26, 39, 104, -5, 2**31, 2**63))]]
    if kind == "nodes":
        return [rng.choice(("", ":", "host", "127.0.0.1:99999", "x" * 300, "[::1]:1"))]
    return rng.choice(EXTREME_INTS)


#: Mutation families for one argument, with their weights.
FAMILIES = {"type": 5, "extreme_int": 4, "float": 1, "huge": 0.25, "deep": 1.5,
            "deep_plain": 0.5, "bad_enum": 3,
            "bad_kind": 2, "bad_typed": 2, "decimal": 0.5, "ext": 2}


#: Cache property codes, and some that are not.
_PROP_CODES = (*range(7), 100, 101, 200, 201, 202, 203, 204, 205, 206, *range(300, 307),
               *range(400, 408), -1, 7, 99, 408, 32767, 65535)


def mutate(family: str, kind: str, rng: random.Random, limit: int) -> Any:
    if kind == "config" and rng.random() < 0.7:  # one property of a valid config
        return {0: rng.choice(HOSTILE_CACHES),
                rng.choice(_PROP_CODES): mutate(family, "value", rng, limit)}
    if family == "type":
        return _wrong_type(rng)
    if family == "extreme_int":
        value = rng.choice(EXTREME_INTS)
        return [value, value, value] if kind == "expiry" and rng.random() < 0.5 else value
    if family == "float":
        return rng.choice(ODD_FLOATS)
    if family == "huge":
        return _huge(rng, limit)
    if family in ("deep", "deep_plain"):
        return _deep(rng, plain=family == "deep_plain")
    if family == "bad_enum":
        return _bad_enum(kind, rng)
    if family == "bad_kind":
        return _bad_kind(rng)
    if family == "bad_typed":
        return _bad_typed(rng)
    if family == "decimal":
        return _decimal(rng, limit)
    return _bad_ext(rng)


# -- encoding ---------------------------------------------------------------------------------


def _pack_value(value: Any) -> bytes:
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, Blob):
        return msgpack.packb(value.value, use_bin_type=True)
    if isinstance(value, list) and any(isinstance(v, Raw | Blob) for v in value):
        return _array_header(len(value)) + b"".join(_pack_value(v) for v in value)
    if isinstance(value, dict) and any(isinstance(v, Raw | Blob) for v in value.values()):
        return _map_header(len(value)) + b"".join(
            msgpack.packb(k) + _pack_value(v) for k, v in value.items())
    return ipc.pack(value)


def _array_header(n: int) -> bytes:
    return bytes([0x90 | n]) if n < 16 else b"\xdd" + struct.pack(">I", n)


def _map_header(n: int) -> bytes:
    return bytes([0x80 | n]) if n < 16 else b"\xdf" + struct.pack(">I", n)


def encode_request(request_id: Any, op: Any, deadline_ms: Any, args: dict[Any, Any],
                   version: Any = 1) -> bytes:
    """The request envelope with ``Raw``/``Blob`` values spliced in; the deadline is always a
    9-byte uint64 so that frames of one input have the same layout whenever they are sent."""
    head = msgpack.packb(version) + msgpack.packb(request_id) + msgpack.packb(op)
    if type(deadline_ms) is int and 0 <= deadline_ms < 2**64:
        deadline = b"\xcf" + struct.pack(">Q", deadline_ms)
    else:
        deadline = msgpack.packb(deadline_ms)
    body = _map_header(len(args)) + b"".join(
        msgpack.packb(k) + _pack_value(v) for k, v in args.items())
    return b"\x95" + head + deadline + body


def describe_args(args: dict[Any, Any], limit: int = 240) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in args.items())
    return text if len(text) <= limit else text[:limit] + "..."


# -- inputs -----------------------------------------------------------------------------------


@dataclasses.dataclass
class GenContext:
    """What input generation may know about the run: node addresses and handles the worker
    received (handles make an input depend on earlier replies; everything else is pure)."""

    node_addresses: tuple[str, ...] = ()
    handles: dict[str, list[int]] = dataclasses.field(
        default_factory=lambda: {"tx": [], "cursor": []})

    def handle(self, rng: random.Random, kind: str) -> int:
        known = self.handles[kind]
        return rng.choice(known) if known and rng.random() < 0.8 else rng.randrange(1, 64)


def _changes_a_cache(inp: Input) -> bool:
    query = inp.args.get("query")
    return inp.op in CACHE_CHANGE_OPS or (
        inp.op == "sql" and isinstance(query, str) and starts_or_stops_a_cache(query))


@dataclasses.dataclass
class Input:
    """One fuzz input: a structured request (op, args) or bytes made from one."""

    index: int
    op: str
    family: str  # mutation family ("valid", "type", ..., "bitflip", "len_lie", ...)
    arg: str | None  # the argument that was mutated
    kind: str | None  # that argument's kind
    args: dict[Any, Any]
    special: str = ""  # a byte-level or envelope mutation applied when encoded
    mseed: int = 0  # seeds the byte-level mutation
    envelope: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def request_id(self) -> int:
        return self.index + 1

    @property
    def anonymous(self) -> bool:
        """True when the reply's id may not be ours: the id or the framing was mutated, or a
        hand-made value may not decode (the broker answers what it cannot read with id 0)."""
        return bool(self.special) or bool(self.envelope) or _has_raw(self.args.values())

    @property
    def signature(self) -> tuple[str, str]:
        return (self.family, self.kind or self.special or "-")

    def encode(self, deadline_ms: int) -> bytes:
        env = self.envelope
        data = encode_request(env.get("id", self.request_id), env.get("op", self.op),
                              env.get("deadline", deadline_ms), self.args,
                              env.get("version", 1))
        if "raw" in env:
            data = env["raw"]
        if self.special in _BYTE_MUTATIONS:
            data = _BYTE_MUTATIONS[self.special](bytearray(data), random.Random(self.mseed))
        return bytes(data)

    def describe(self) -> dict[str, Any]:
        return {"index": self.index, "op": self.op, "family": self.family, "arg": self.arg,
                "special": self.special or None,
                "envelope": {k: repr(v)[:80] for k, v in self.envelope.items()} or None,
                "args": describe_args(self.args)}


def _has_raw(values: Any) -> bool:
    for value in values:
        if isinstance(value, Raw):
            return True
        if isinstance(value, list) and _has_raw(value):
            return True
        if isinstance(value, dict) and _has_raw(value.values()):
            return True
    return False


def _bitflip(data: bytearray, rng: random.Random) -> bytearray:
    for _ in range(rng.randrange(1, 9)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return data


def _set_bytes(data: bytearray, rng: random.Random) -> bytearray:
    for _ in range(rng.randrange(1, 4)):
        data[rng.randrange(len(data))] = rng.choice(MSGPACK_MARKERS)
    return data


def _truncate(data: bytearray, rng: random.Random) -> bytearray:
    return data[:rng.randrange(len(data))]


def _extend(data: bytearray, rng: random.Random) -> bytearray:
    return data + rng.randbytes(rng.randrange(1, 64))


def _splice(data: bytearray, rng: random.Random) -> bytearray:
    at = rng.randrange(len(data) + 1)
    chunk = bytes(rng.choice(MSGPACK_MARKERS) for _ in range(rng.randrange(1, 8)))
    return data[:at] + chunk + data[at:]


def _duplicate(data: bytearray, rng: random.Random) -> bytearray:
    a = rng.randrange(len(data))
    b = rng.randrange(a, min(len(data), a + 64) + 1)
    return data[:b] + data[a:b] + data[b:]


_BYTE_MUTATIONS: dict[str, Callable[[bytearray, random.Random], bytearray]] = {
    "bitflip": _bitflip, "set_bytes": _set_bytes, "truncate": _truncate, "extend": _extend,
    "splice": _splice, "duplicate": _duplicate,
}
#: Inputs sent on a throwaway connection, because they break its framing (unix://) or make
#: libzmq drop the peer (ipc://).
STREAM_SPECIALS = ("len_long", "len_short", "len_huge", "len_stall", "len_zero_run")
ZMQ_SPECIALS = ("multi_frame", "empty_frame", "oversize")


def _envelope(rng: random.Random) -> dict[str, Any]:
    field = rng.choice(("version", "id", "op", "deadline", "raw"))
    if field == "version":
        return {"version": rng.choice((0, 2, -1, 2**64 - 1, "1", None, 1.0, True))}
    if field == "id":
        return {"id": rng.choice((-1, 2**64 - 1, "7", None, 1.5, [1], b"\x01"))}
    if field == "op":
        return {"op": rng.choice(("", "CACHE_GET", "cache_get ", "x" * 10_000, 1, None,
                                  b"cache_get", "\u0000", "__init__", "handle"))}
    if field == "deadline":
        return {"deadline": rng.choice((1, 2**64 - 1, -1, "soon", None, 1.5))}
    shape = rng.choice(([1, 1, "ping", 0], [1, 1, "ping", 0, {}, 0], {"op": "ping"}, [],
                        [1, 1, "ping", 0, {1: 2}], [1, 1, "ping", 0, {b"cache": "x"}],
                        [1, 1, "ping", 0, None], "ping", None))
    return {"raw": msgpack.packb(shape, use_bin_type=True)}


class Generator:
    """Input ``index`` of a run: a pure function of (seed, index, transport)."""

    def __init__(self, seed: int, max_request_bytes: int, transport: str,
                 ctx: GenContext | None = None, ops: tuple[str, ...] = OPS) -> None:
        self.seed = seed
        self.ops = ops
        self.limit = max_request_bytes
        self.transport = transport
        self.ctx = ctx or GenContext()
        self.families = list(FAMILIES)
        self.weights = list(FAMILIES.values())

    def make(self, index: int) -> Input:
        rng = random.Random(f"{self.seed}:{index}")
        op = rng.choice(self.ops)
        specs = arg_specs(op)
        args = self._valid_args(specs, rng)
        roll = rng.random()
        if roll < 0.08:
            return Input(index, op, "valid", None, None, args)
        if roll < 0.62:
            return self._mutate_args(index, op, specs, args, rng)
        if roll < 0.70:
            return self._mutate_shape(index, op, specs, args, rng)
        if roll < 0.76:
            return Input(index, op, "envelope", None, None, args, envelope=_envelope(rng))
        specials = STREAM_SPECIALS if self.transport == "unix" else ZMQ_SPECIALS
        if roll < 0.78:
            special = rng.choice(specials)
            return Input(index, op, special, None, None, args, special=special,
                         mseed=rng.getrandbits(32))
        if op in _NO_BYTE_MUTATION:
            return Input(index, "ping", "valid", None, None, {})
        special = rng.choice(tuple(_BYTE_MUTATIONS))
        return Input(index, op, special, None, None, args, special=special,
                     mseed=rng.getrandbits(32))

    def _valid_args(self, specs: dict[str, str], rng: random.Random) -> dict[str, Any]:
        args = {}
        for name, kind in specs.items():
            if name.startswith("?"):
                if rng.random() < 0.5:
                    continue
                name = name[1:]
            args[name] = _valid(kind, rng, self.ctx)
        return args

    def _mutate_args(self, index: int, op: str, specs: dict[str, str], args: dict[str, Any],
                     rng: random.Random) -> Input:
        names = [n.lstrip("?") for n in specs]
        if not names:
            names = ["cache"]
            specs = {"cache": "cache"}
        kinds = {n.lstrip("?"): k for n, k in specs.items()}
        family = rng.choices(self.families, self.weights)[0]
        first = None
        for name in rng.sample(names, rng.randrange(1, min(3, len(names)) + 1)):
            value = mutate(family, kinds[name], rng, self.limit)
            if op == "cluster_set_state" and name == "state" and value in (0, 2) \
                    and type(value) is int:
                value = 1  # a valid state would deactivate the cluster for everyone
            args[name] = value
            first = first or name
        return Input(index, op, family, first, kinds[first], args)

    def _mutate_shape(self, index: int, op: str, specs: dict[str, str], args: dict[str, Any],
                      rng: random.Random) -> Input:
        """A required argument missing, or unknown/oddly named arguments added."""
        required = [n for n in specs if not n.startswith("?")]
        if required and rng.random() < 0.5:
            name = rng.choice(required)
            args.pop(name, None)
            return Input(index, op, "missing_arg", name, specs[name], args)
        extra = rng.choice(("", "x" * 1000, "cache ", "__class__", "\u00e9", "tx", "expiry",
                            "cursor", "page_size", "config"))
        family = rng.choices(self.families, self.weights)[0]
        args[extra] = mutate(family, "value", rng, self.limit)
        return Input(index, op, family, extra, "extra_arg", args)


# -- connections ------------------------------------------------------------------------------


class BrokerGone(Exception):
    """The broker closed a connection (or its process is gone)."""


class StreamConn:
    """A bare unix:// connection: length-prefixed frames out, whole messages in."""

    def __init__(self, endpoint: str, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(stream_path(endpoint))
        except OSError as exc:
            self.sock.close()
            raise BrokerGone(f"connect: {exc}") from exc
        self.reader = MessageReader()

    def send(self, message: bytes) -> None:
        self.send_raw(frame(message))

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise BrokerGone(f"send: {exc}") from exc

    def recv(self, timeout: float) -> list[bytes]:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return []
        try:
            data = self.sock.recv(1 << 20)
        except OSError as exc:
            raise BrokerGone(f"recv: {exc}") from exc
        if not data:
            raise BrokerGone("the broker closed the connection")
        return [m for m in self.reader.feed(data) if not isinstance(m, Oversized)]

    def close(self) -> None:
        self.sock.close()


class ZmqConn:
    """A bare ZeroMQ DEALER: one frame per message."""

    def __init__(self, endpoint: str, timeout: float = 30.0) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
        self.sock.connect(endpoint)

    def send(self, message: bytes) -> None:
        self.send_multipart([message])

    def send_multipart(self, frames: list[bytes]) -> None:
        try:
            self.sock.send_multipart(frames)
        except zmq.ZMQError as exc:
            raise BrokerGone(f"send: {exc}") from exc

    def recv(self, timeout: float) -> list[bytes]:
        if not self.sock.poll(int(timeout * 1000)):
            return []
        out = []
        with contextlib.suppress(zmq.Again):
            while True:
                out.append(self.sock.recv(zmq.NOBLOCK))
        return out

    def close(self) -> None:
        self.sock.close(linger=0)


def connect(transport: str, endpoint: str) -> StreamConn | ZmqConn:
    return StreamConn(endpoint) if transport == "unix" else ZmqConn(endpoint)


# -- tallies ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Pending:
    inp: Input
    sent: float  # monotonic
    expires: float  # monotonic: no reply by then is "unanswered"
    size: int


class Tally:
    """What the hostile workers saw, shared between their threads (under one lock)."""

    EXAMPLES = 3  # kept per (symptom, op, family, arg kind)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.skipped = 0  # quarantined signatures, not sent
        self.bytes_sent = 0
        self.families: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.op_statuses: Counter[str] = Counter()
        self.throwaway_replies = 0
        self.unexpected_replies = 0
        self.undecodable_replies = 0
        self.late_replies = 0
        self.late_examples: list[dict[str, Any]] = []  # unanswered, then answered: how late
        self.failures: dict[str, list[dict[str, Any]]] = {}  # symptom -> examples
        self.failure_counts: Counter[str] = Counter()
        self.signature_counts: Counter[tuple[str, ...]] = Counter()
        self.max_ratio: tuple[float, dict[str, Any] | None] = (0.0, None)
        self.max_error_ratio: tuple[float, dict[str, Any] | None] = (0.0, None)
        self.max_reply_bytes = 0
        self.suspicious: deque[tuple[float, int, str]] = deque(maxlen=4000)
        #: (sent, answered) on the monotonic clock of every cache start or stop a node did
        #: (answered OK): the well-behaved worker's slow requests are compared with them.
        self.cache_changes: list[tuple[float, float]] = []

    def on_sent(self, inp: Input, size: int) -> None:
        with self.lock:
            self.sent += 1
            self.bytes_sent += size
            self.families[inp.family] += 1

    def on_reply(self, pending: Pending, reply: ipc.Reply, size: int) -> None:
        status = STATUS_NAMES.get(reply.status, str(reply.status))
        inp = pending.inp
        with self.lock:
            self.statuses[status] += 1
            self.op_statuses[f"{inp.op} {status}"] += 1
            self.max_reply_bytes = max(self.max_reply_bytes, size)
            ratio = size / max(pending.size, 1)  # size 0: a reply matched by order, not id
            if ratio > self.max_ratio[0]:
                self.max_ratio = (ratio, {**inp.describe(), "request_bytes": pending.size,
                                          "reply_bytes": size, "status": status})
            if reply.status != ipc.Status.OK and ratio > self.max_error_ratio[0]:
                self.max_error_ratio = (ratio, {**inp.describe(), "request_bytes": pending.size,
                                                "reply_bytes": size, "status": status})
            if reply.status in (ipc.Status.CLUSTER_UNAVAILABLE, ipc.Status.SERVER_ERROR,
                                ipc.Status.DEADLINE_EXCEEDED):
                self.suspicious.append((time.monotonic(), inp.index, status))
            if reply.status == ipc.Status.OK and _changes_a_cache(inp):
                self.cache_changes.append((pending.sent, time.monotonic()))
        if reply.status == ipc.Status.INTERNAL:
            self.fail("internal", inp, message=_message(reply.payload),
                      matched="by id" if size else "by order (the input is a guess)")

    def fail(self, symptom: str, inp: Input, **detail: Any) -> None:
        key = (symptom, inp.op, inp.family, inp.kind or inp.special or "-")
        with self.lock:
            self.failure_counts[symptom] += 1
            self.signature_counts[key] += 1
            if self.signature_counts[key] <= self.EXAMPLES:
                self.failures.setdefault(symptom, []).append({**inp.describe(), **detail})

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                "inputs_sent": self.sent, "inputs_skipped_quarantined": self.skipped,
                "bytes_sent": self.bytes_sent, "by_family": dict(self.families.most_common()),
                "replies_by_status": dict(self.statuses.most_common()),
                "throwaway_connection_replies": self.throwaway_replies,
                "unexpected_replies": self.unexpected_replies,
                "undecodable_replies": self.undecodable_replies,
                "late_replies": self.late_replies,
                "late_examples": self.late_examples,
                "failure_counts": dict(self.failure_counts),
                "failure_signatures": [
                    {"symptom": k[0], "op": k[1], "family": k[2], "kind": k[3], "count": n}
                    for k, n in self.signature_counts.most_common()],
                "failures": self.failures,
                "amplification": {
                    "max_ratio": round(self.max_ratio[0], 2), "at": self.max_ratio[1],
                    "max_error_ratio": round(self.max_error_ratio[0], 2),
                    "error_at": self.max_error_ratio[1],
                    "max_reply_bytes": self.max_reply_bytes},
            }


def _message(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("message"))[:300]
    return repr(payload)[:300]


# -- hostile workers --------------------------------------------------------------------------


class Campaign:
    """The inputs of one transport's run, shared by its hostile workers: the next index, the
    quarantined signatures, the stop flag and the tally."""

    def __init__(self, transport: str, endpoint: str, seed: int, count: int, start: int,
                 max_request_bytes: int, node_addresses: tuple[str, ...],
                 ops: tuple[str, ...] = OPS) -> None:
        self.transport = transport
        self.endpoint = endpoint
        self.seed = seed
        self.end = start + count
        self.max_request_bytes = max_request_bytes
        self.node_addresses = node_addresses
        self.ops = ops
        self._next = itertools.count(start)
        self._lock = threading.Lock()
        self.stop = threading.Event()  # stop sending; drain
        self.abort = threading.Event()  # stop at once (the broker or a node is gone)
        self.quarantine: set[tuple[str, str]] = set()
        self.tally = Tally()

    def quarantined(self, inp: Input) -> bool:
        return inp.signature in self.quarantine or (inp.family, "*") in self.quarantine

    def next_index(self) -> int | None:
        with self._lock:
            index = next(self._next)
        return index if index < self.end else None

    def generator(self) -> Generator:
        return Generator(self.seed, self.max_request_bytes, self.transport,
                         GenContext(self.node_addresses), self.ops)


class HostileWorker(threading.Thread):
    """One hostile connection that pipelines up to ``window`` mutated requests."""

    def __init__(self, campaign: Campaign, number: int, window: int) -> None:
        super().__init__(name=f"hostile-{campaign.transport}-{number}", daemon=True)
        self.campaign = campaign
        self.window = window
        self.gen = campaign.generator()
        self.pending: dict[int, Pending] = {}
        self.anon: deque[int] = deque()
        self.expired: dict[int, Pending] = {}
        self.expired_anon: deque[int] = deque()  # of the expired, those matched by order
        self.error: str | None = None

    def run(self) -> None:
        camp = self.campaign
        try:
            conn = connect(camp.transport, camp.endpoint)
        except BrokerGone as exc:
            self.error = str(exc)
            return
        try:
            self._loop(conn)
            self._drain(conn)
        except BrokerGone as exc:
            self.error = str(exc)
        finally:
            conn.close()

    def _loop(self, conn: StreamConn | ZmqConn) -> None:
        camp = self.campaign
        while not camp.stop.is_set():
            if len(self.pending) < self.window:
                index = camp.next_index()
                if index is None:
                    return
                inp = self.gen.make(index)
                if camp.quarantined(inp):
                    with camp.tally.lock:
                        camp.tally.skipped += 1
                    continue
                self._send(conn, inp)
                self._receive(conn, 0)
            else:
                self._receive(conn, 0.05)
            self._expire()

    def _drain(self, conn: StreamConn | ZmqConn) -> None:
        while self.pending and not self.campaign.abort.is_set():
            self._receive(conn, 0.1)
            self._expire()
        # An unanswered request's reply may still come: late (counted), or never.
        end = time.monotonic() + LATE_WAIT_S
        while self.expired and time.monotonic() < end and not self.campaign.abort.is_set():
            self._receive(conn, 0.1)

    def _send(self, conn: StreamConn | ZmqConn, inp: Input) -> None:
        deadline_ms = int((time.time() + REQUEST_DEADLINE_S) * 1000)
        if inp.special in STREAM_SPECIALS or inp.special in ZMQ_SPECIALS:
            size = throwaway(self.campaign, inp, deadline_ms)
            self.campaign.tally.on_sent(inp, size)
            return
        data = inp.encode(deadline_ms)
        now = time.monotonic()
        anonymous = inp.anonymous or len(data) > self.campaign.max_request_bytes
        wait = max(REQUEST_DEADLINE_S, BROKER_REQUEST_TIMEOUT_S if anonymous else 0)
        self.pending[inp.request_id] = Pending(inp, now, now + wait + GRACE_S, len(data))
        if anonymous:
            self.anon.append(inp.request_id)
        conn.send(data)
        self.campaign.tally.on_sent(inp, len(data))

    def _receive(self, conn: StreamConn | ZmqConn, timeout: float) -> None:
        tally = self.campaign.tally
        for message in conn.recv(timeout):
            try:
                reply = ipc.unpack_reply(message)
            except ipc.IpcError:
                with tally.lock:
                    tally.undecodable_replies += 1
                continue
            pending = self._match(reply.request_id)
            if pending is None:
                continue
            exact = pending.inp.request_id == reply.request_id
            tally.on_reply(pending, reply, len(message) if exact else 0)
            self._learn(pending.inp, reply)

    def _match(self, request_id: int) -> Pending | None:
        tally = self.campaign.tally
        pending = self.pending.pop(request_id, None)
        while pending is None and self.anon:
            pending = self.pending.pop(self.anon.popleft(), None)
        if pending is not None:
            return pending
        late = self.expired.pop(request_id, None)
        while late is None and self.expired_anon:  # matched by order, as in the pending
            late = self.expired.pop(self.expired_anon.popleft(), None)
        with tally.lock:
            if late is not None:
                tally.late_replies += 1
                if len(tally.late_examples) < 10:
                    tally.late_examples.append({
                        **late.inp.describe(),
                        "late_by_s": round(time.monotonic() - late.expires + GRACE_S, 1)})
            else:
                tally.unexpected_replies += 1
        return None

    def _expire(self) -> None:
        if not self.pending:
            return
        now = time.monotonic()
        for rid, pending in list(self.pending.items()):
            if pending.expires < now:
                del self.pending[rid]
                self.expired[rid] = pending
                if rid in self.anon:
                    self.anon.remove(rid)
                    self.expired_anon.append(rid)
                self.campaign.tally.fail("unanswered", pending.inp,
                                         waited_s=round(now - pending.sent, 1))

    def _learn(self, inp: Input, reply: ipc.Reply) -> None:
        """Keep the handles this worker was given, so that later inputs can use (and abuse)
        real transactions and cursors."""
        if reply.status != ipc.Status.OK:
            return
        handles = self.gen.ctx.handles
        if inp.op == "tx_start" and type(reply.payload) is int:
            handles["tx"] = [*handles["tx"][-7:], reply.payload]
        elif isinstance(reply.payload, dict) and type(reply.payload.get("cursor")) is int:
            handles["cursor"] = [*handles["cursor"][-7:], reply.payload["cursor"]]

    def abandon(self) -> list[Input]:
        """The inputs still waiting for a reply (the broker or a node went away)."""
        return [p.inp for p in self.pending.values()]


def throwaway(campaign: Campaign, inp: Input, deadline_ms: int) -> int:
    """Send an input that breaks its connection's framing on a connection of its own; count
    whatever comes back within a moment; return the bytes sent."""
    rng = random.Random(inp.mseed)
    data = inp.encode(deadline_ms)
    try:
        conn = connect(campaign.transport, campaign.endpoint)
    except BrokerGone:
        return 0
    try:
        if isinstance(conn, StreamConn):
            wire = _stream_special(inp.special, data, rng, campaign.max_request_bytes)
            conn.send_raw(wire)
        else:
            frames = _zmq_special(inp.special, data, rng, campaign.max_request_bytes)
            conn.send_multipart(frames)
            wire = b"".join(frames)
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            got = len(conn.recv(0.05))
            with campaign.tally.lock:
                campaign.tally.throwaway_replies += got
    except BrokerGone:
        pass
    finally:
        conn.close()
    return len(wire)


def _stream_special(special: str, data: bytes, rng: random.Random, limit: int) -> bytes:
    n = len(data)
    if special == "len_long":  # claims more than follows, then the connection closes
        return struct.pack(">I", n + rng.choice((1, 100, 65536, limit - n))) + data
    if special == "len_short":  # claims less: the rest is read as the next header
        return struct.pack(">I", rng.randrange(n)) + data
    if special == "len_huge":
        return struct.pack(">I", rng.choice((2**32 - 1, 2**31, limit + 1))) + data
    if special == "len_stall":  # a nearly complete message, never finished
        return struct.pack(">I", n) + data[:-1]
    return b"\x00\x00\x00\x00" * rng.randrange(1, 200) + frame(data)  # len_zero_run


def _zmq_special(special: str, data: bytes, rng: random.Random, limit: int) -> list[bytes]:
    if special == "multi_frame":
        return [data, *(rng.randbytes(rng.randrange(8)) for _ in range(rng.randrange(1, 4)))]
    if special == "empty_frame":
        return [b""]
    # oversize: just past the limit (TOO_LARGE), rarely past libzmq's own cut (4 x limit)
    size = limit + 1 if rng.random() < 0.9 else 4 * limit + 1
    return [data + b"\x00" * max(0, size - len(data))]


# -- the well-behaved worker ------------------------------------------------------------------

IDLE, FUZZ, AFTER = 0, 1, 2
GOOD_STEPS = ("put", "get", "put_all", "get_all")  # the well-behaved worker's steps, in turn
PHASES = {IDLE: "idle", FUZZ: "fuzzing", AFTER: "after"}


def good_worker_main(endpoint: str, cache_name: str, phase: Any, stop: Any, out: Any,
                     seed: int, pace_s: float) -> None:
    """A libclient worker (own process) that loops put/get/put_all/get_all and checks that
    each read returns what it last wrote; sends its summary to ``out`` when ``stop`` is set."""
    from libclient import Client

    rng = random.Random(f"good:{seed}")
    client = Client(broker=endpoint, timeout=REQUEST_DEADLINE_S + 5)
    client.connect()
    cache = client.get_or_create_cache(cache_name)
    cache.clear()
    out.put("ready")
    checker = ValueChecker()
    keys = [f"g{i}" for i in range(32)] + list(range(32))
    for n in itertools.count():
        if stop.is_set():
            break
        current = phase.value
        began = time.monotonic()
        try:
            _good_step(n, cache, checker, rng, keys)
        except Exception as exc:
            checker.error(exc)
        checker.took(current, n % 4, began, time.monotonic() - began)
        time.sleep(pace_s)
    client.close()
    out.put(checker.summary())


class ValueChecker:
    """The well-behaved worker's memory: the values each key may hold now (a failed write
    may or may not have been applied, so it allows both)."""

    def __init__(self) -> None:
        self.allowed: dict[Any, set[Any]] = {}
        self.latencies: dict[int, list[float]] = {IDLE: [], FUZZ: [], AFTER: []}
        self.ops = 0
        self.errors: Counter[str] = Counter()
        self.error_examples: list[str] = []
        self.wrong: list[dict[str, Any]] = []
        self.lost_writes = 0
        #: (began, seconds, step) of every request while fuzzing, on the monotonic clock
        self.timeline: list[tuple[float, float, int]] = []

    def took(self, phase: int, step: int, began: float, seconds: float) -> None:
        self.latencies[phase].append(seconds)
        if phase == FUZZ:
            self.timeline.append((began, seconds, step))

    def wrote(self, key: Any, value: Any) -> None:
        self.allowed[key] = {value}

    def write_failed(self, key: Any, value: Any) -> None:
        self.lost_writes += 1
        self.allowed.setdefault(key, {None}).add(value)

    def read(self, key: Any, value: Any) -> None:
        self.ops += 1
        if value not in self.allowed.get(key, {None}) and len(self.wrong) < 100:
            self.wrong.append({"key": repr(key), "got": repr(value)[:80],
                               "allowed": [repr(v)[:80] for v in self.allowed.get(key, {None})]})

    def error(self, exc: Exception) -> None:
        name = type(exc).__name__
        self.errors[name] += 1
        if len(self.error_examples) < 10:
            self.error_examples.append(f"{name}: {str(exc)[:200]}")

    def summary(self) -> dict[str, Any]:
        return {"ops": self.ops, "errors": dict(self.errors),
                "error_examples": self.error_examples, "wrong_values": len(self.wrong),
                "wrong_examples": self.wrong[:10], "lost_writes": self.lost_writes,
                "latency_ms": {PHASES[p]: percentiles(v) for p, v in self.latencies.items()},
                "fuzzing_by_step_ms": {
                    name: percentiles([t for _, t, s in self.timeline if s == step])
                    for step, name in enumerate(GOOD_STEPS)},
                "slowest_fuzzing": self._slowest()}

    def _slowest(self) -> list[tuple[float, float, int]]:
        """The slowest 1% of the requests made while fuzzing (the ones p99 is about)."""
        count = max(1, len(self.timeline) // 100)
        return sorted(self.timeline, key=lambda sample: sample[1])[-count:]


def _good_step(n: int, cache: Any, checker: ValueChecker, rng: random.Random,
               keys: list[Any]) -> None:
    step = n % 4
    if step == 0:
        key, value = rng.choice(keys), f"v{n}-{rng.getrandbits(32)}"
        try:
            cache.put(key, value)
        except Exception:
            checker.write_failed(key, value)
            raise
        checker.wrote(key, value)
    elif step == 1:
        key = rng.choice(keys)
        checker.read(key, cache.get(key))
    elif step == 2:
        pairs = {k: (n if isinstance(k, str) else f"n{n}") for k in rng.sample(keys, 4)}
        try:
            cache.put_all(pairs)
        except Exception:
            for k, v in pairs.items():
                checker.write_failed(k, v)
            raise
        for k, v in pairs.items():
            checker.wrote(k, v)
    else:
        wanted = rng.sample(keys, 6)
        found = cache.get_all(wanted)
        for key in wanted:
            checker.read(key, found.get(key))


def percentiles(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"count": 0}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"count": len(ordered), "p50": at(0.5), "p99": at(0.99), "max": at(1.0)}


class GoodWorker:
    """The well-behaved worker's process and the switches the harness flips."""

    def __init__(self, endpoint: str, cache_name: str, seed: int, pace_s: float = 0.004) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.phase = ctx.Value("i", IDLE)
        self.stop_event = ctx.Event()
        self.out = ctx.Queue()
        self.proc = ctx.Process(target=good_worker_main, daemon=True, args=(
            endpoint, cache_name, self.phase, self.stop_event, self.out, seed, pace_s))

    def start(self, timeout: float = 60.0) -> None:
        self.proc.start()
        ready = self.out.get(timeout=timeout)
        assert ready == "ready", ready

    def set_phase(self, phase: int) -> None:
        self.phase.value = phase

    def finish(self, timeout: float = 60.0) -> dict[str, Any]:
        self.stop_event.set()
        try:
            result = self.out.get(timeout=timeout)
        except Exception as exc:  # the queue's Empty, or a dead child
            result = {"error": f"no summary from the well-behaved worker: {exc!r}"}
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
        return result


# -- the system under test --------------------------------------------------------------------


class Target:
    """The dev cluster and the broker the fuzzing aims at: started here or attached to."""

    def __init__(self, opts: argparse.Namespace, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.cluster: DevCluster | None = None
        self.broker: BrokerProcess | None = None
        self.restarts = 0
        self.old_log_bytes = 0  # logs of brokers that crashed during this transport's run

    # cluster
    def start_cluster(self) -> None:
        if self.opts.attach_cluster:
            self.cluster = DevCluster.attach(self.opts.attach_cluster)
        else:
            self.cluster = DevCluster(self.opts.nodes, self.opts.base_port).start()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        assert self.cluster is not None
        return self.cluster.addresses

    def dead_nodes(self) -> list[int]:
        assert self.cluster is not None
        return [i for i, node in enumerate(self.cluster.record.nodes) if not node.alive()]

    def restart_dead_nodes(self) -> list[int]:
        dead = self.dead_nodes()
        assert self.cluster is not None
        for idx in dead:
            self.cluster.start_node(idx)
        return dead

    # broker
    def start_broker(self, transport: str) -> None:
        directory = self.workdir / transport
        directory.mkdir(parents=True, exist_ok=True)
        self.broker = BrokerProcess(self.addresses, workdir=directory, settings={
            "limits.max_request_bytes": self.opts.max_request_bytes,
            "limits.request_timeout": BROKER_REQUEST_TIMEOUT_S,
            # a mutated deadline (years away) is served no longer than one left out
            "limits.max_request_timeout": BROKER_REQUEST_TIMEOUT_S,
            **dict(self.opts.broker_setting),
        })
        self.broker.start(wait_nodes=len(self.addresses))

    def restart_broker(self) -> None:
        """After a crash: keep the dead broker's log, start a new one in its place."""
        broker = self.broker
        assert broker is not None
        self.restarts += 1
        kept = broker.log_path.with_name(f"broker.log.crash-{self.restarts}")
        with contextlib.suppress(FileNotFoundError):
            broker.log_path.rename(kept)
            self.old_log_bytes += kept.stat().st_size
        broker.start(wait_nodes=len(self.addresses))

    def endpoint(self, transport: str) -> str:
        assert self.broker is not None
        return self.broker.stream_endpoint if transport == "unix" else self.broker.endpoint

    def broker_exit(self) -> int | None:
        """None while the broker runs, else its exit code (negative: killed by that signal)."""
        assert self.broker is not None and self.broker.proc is not None
        return self.broker.proc.poll()

    def rss_kib(self) -> int | None:
        assert self.broker is not None and self.broker.proc is not None
        try:
            for line in Path(f"/proc/{self.broker.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def stats(self, timeout: float = 3.0) -> dict[str, Any] | None:
        assert self.broker is not None
        try:
            answer = admin_query(self.broker.admin_endpoint, "show stats", timeout=timeout)
        except (AdminError, TimeoutError, zmq.ZMQError):  # AdminError: no answer in time
            return None
        return answer.get("result") if answer.get("ok") else None

    def log_bytes(self) -> int:
        assert self.broker is not None
        try:
            size = self.broker.log_path.stat().st_size
        except FileNotFoundError:
            size = 0
        return self.old_log_bytes + size

    def stop_broker(self) -> int | None:
        assert self.broker is not None
        return self.broker.stop()

    def node_log_tails(self, size: int = 1500) -> list[str]:
        assert self.cluster is not None
        tails = []
        for node in self.cluster.record.nodes:
            try:
                tails.append(node.log.read_text(errors="replace")[-size:])
            except OSError as exc:
                tails.append(str(exc))
        return tails

    def keep_node_logs(self, nodes: list[int]) -> dict[str, Any]:
        """Copies the logs of `nodes` (before a restart writes over them) to KEPT_LOGS, and
        returns where, with each log's telling lines (errors, the failure handler), cut short:
        a tail alone can be one huge line a node printed last."""
        assert self.cluster is not None
        target = KEPT_LOGS / f"fuzz-{self.cluster.base_port}-{int(time.time())}"
        target.mkdir(parents=True, exist_ok=True)
        telling: dict[str, list[str]] = {}
        for node in self.cluster.record.nodes:
            if node.idx not in nodes:
                continue
            with contextlib.suppress(OSError):
                shutil.copy(node.log, target / node.log.name)
                with open(node.log, errors="replace") as log:
                    lines = [line[:TELLING_LINE_CHARS].rstrip() for line in log
                             if TELLING_LINE.search(line[:TELLING_LINE_CHARS])]
                telling[str(node.idx)] = lines[-TELLING_LINES:]
        return {"kept_logs": str(target), "telling_lines": telling}

    def stop_cluster(self) -> None:
        if self.cluster is not None and not self.opts.attach_cluster:
            self.cluster.stop()


# -- watching and triage ----------------------------------------------------------------------


class Watch:
    """Polls the broker process, the node JVMs, the broker's RSS and its admin stats while the
    hostile workers run; node connections lost are attributed to recent suspicious replies."""

    def __init__(self, target: Target, campaign: Campaign) -> None:
        self.target = target
        self.campaign = campaign
        self.rss_peak = target.rss_kib() or 0
        self.first_stats = target.stats()
        self.last_stats = self.first_stats
        self.last_stats_at = time.monotonic()
        self.conn_lost_events: list[dict[str, Any]] = []
        self.admin_timeouts = 0
        self.workers: list[HostileWorker] = []
        self.stall_suspects: list[Input] = []
        self.none_ready_since: float | None = None
        self.internal_base = (self.first_stats or {}).get("internal_errors", 0)
        self.lost_base = (self.first_stats or {}).get("node_connections_lost", 0)

    def poll(self) -> str | None:
        """"crash", "halt" or "hang" (no node took a handshake for UNRESPONSIVE_S while their
        JVMs run) when that happened, else None."""
        if self.target.broker_exit() is not None:
            return "crash"
        if self.target.dead_nodes():
            return "halt"
        if self.none_ready_since is not None and \
                time.monotonic() - self.none_ready_since > UNRESPONSIVE_S:
            return "hang"
        self.rss_peak = max(self.rss_peak, self.target.rss_kib() or 0)
        now = time.monotonic()
        if now - self.last_stats_at >= 1.0:
            self._poll_stats(now)
        return None

    def _poll_stats(self, now: float) -> None:
        stats = self.target.stats(timeout=2.0)
        if stats is None:  # the event loop is held: note what was in flight
            self.admin_timeouts += 1
            if len(self.stall_suspects) < 400:
                self.stall_suspects += [p.inp for w in self.workers
                                        for p in list(w.pending.values())]
            return
        self._check_nodes_ready(now)
        lost = stats.get("node_connections_lost", 0)
        before = (self.last_stats or {}).get("node_connections_lost", 0)
        if lost > before:
            window_start = self.last_stats_at - 2.0
            suspects = [(i, s) for t, i, s in list(self.campaign.tally.suspicious)
                        if t >= window_start]
            self.conn_lost_events.append({"lost": lost - before, "suspects": suspects[-200:]})
        self.last_stats, self.last_stats_at = stats, now

    def _check_nodes_ready(self, now: float) -> None:
        assert self.target.broker is not None
        try:
            nodes = self.target.broker.admin("show nodes")
        except (AdminError, RuntimeError, TimeoutError, zmq.ZMQError):
            return
        if any(n["state"] == "ready" for n in nodes):  # type: ignore[union-attr]
            self.none_ready_since = None
        elif self.none_ready_since is None:
            self.none_ready_since = now

    def rebase(self) -> None:
        """After a broker restart its counters start at zero again."""
        stats = self.target.stats() or {}
        self.internal_base -= stats.get("internal_errors", 0)
        self.lost_base -= stats.get("node_connections_lost", 0)
        self.last_stats = stats

    def totals(self) -> tuple[int, int]:
        """(node connections lost, internal errors) over the whole run so far."""
        stats = self.target.stats() or self.last_stats or {}
        return (stats.get("node_connections_lost", 0) - self.lost_base,
                stats.get("internal_errors", 0) - self.internal_base)


def probe(target: Target, transport: str, inp: Input, settle: float = 0.3) -> dict[str, Any]:
    """Send one input alone on a fresh connection and see what it does; heals the target
    afterwards (restarts the broker or the nodes) so the next probe starts clean."""
    before = target.stats() or {}
    campaign = Campaign(transport, target.endpoint(transport), 0, 0, 0,
                        target.opts.max_request_bytes, ())
    deadline_ms = int((time.time() + REQUEST_DEADLINE_S) * 1000)
    reply: ipc.Reply | None = None
    if inp.special in STREAM_SPECIALS or inp.special in ZMQ_SPECIALS:
        throwaway(campaign, inp, deadline_ms)
    else:
        reply = _send_alone(target, transport, inp.encode(deadline_ms))
    time.sleep(settle)
    return _symptoms(target, before, reply)


def _send_alone(target: Target, transport: str, data: bytes) -> ipc.Reply | None:
    try:
        conn = connect(transport, target.endpoint(transport))
    except BrokerGone:
        return None
    try:
        conn.send(data)
        end = time.monotonic() + REQUEST_DEADLINE_S + GRACE_S
        while time.monotonic() < end and target.broker_exit() is None:
            for message in conn.recv(0.1):
                with contextlib.suppress(ipc.IpcError):
                    return ipc.unpack_reply(message)
    except BrokerGone:
        return None
    finally:
        conn.close()
    return None


def _symptoms(target: Target, before: dict[str, Any], reply: ipc.Reply | None) -> dict[str, Any]:
    found: list[str] = []
    exit_code = target.broker_exit()
    dead = target.dead_nodes()
    if exit_code is not None:
        found.append("crash")
    if dead:
        found.append("halt")
    after = target.stats() or {} if exit_code is None else {}
    if after.get("node_connections_lost", 0) > before.get("node_connections_lost", 0):
        found.append("conn_lost")
    if after.get("internal_errors", 0) > before.get("internal_errors", 0):
        found.append("internal")
    if reply is None and exit_code is None:
        found.append("unanswered")
    outcome = {"symptoms": found, "exit_code": exit_code, "dead_nodes": dead,
               "reply_status": STATUS_NAMES.get(reply.status) if reply else None,
               "reply_message": _message(reply.payload) if reply and reply.status else None}
    if dead:
        target.restart_dead_nodes()
    if exit_code is not None:
        target.restart_broker()
    elif dead:
        assert target.broker is not None
        target.broker.wait_ready(len(target.addresses))
    return outcome


def triage(target: Target, transport: str, suspects: list[Input], symptom: str,
           limit: int, settle: float = 0.3, minimize: bool = True) -> dict[str, Any] | None:
    """Replay suspects one at a time until one shows ``symptom``; that one is the finding."""
    seen: set[int] = set()
    tried = 0
    for inp in suspects:
        if inp.index in seen or tried >= limit:
            continue
        seen.add(inp.index)
        tried += 1
        outcome = probe(target, transport, inp, settle)
        if symptom in outcome["symptoms"]:
            found = {"symptom": symptom, "transport": transport, "input": inp.describe(),
                     "signature": list(inp.signature), "probes": tried, **outcome}
            if minimize and not (inp.special or inp.envelope):
                found["minimal"] = shrink(target, transport, inp, symptom, settle)
            return found
    return None


def shrink(target: Target, transport: str, inp: Input, symptom: str, settle: float,
           budget: int = 12) -> str:
    """Drop the input's arguments one at a time, then make the rest plain valid values, while
    the symptom stays: the request left is the minimal reproducer reported."""
    args = dict(inp.args)
    kinds = {n.lstrip("?"): k for n, k in arg_specs(inp.op).items()}
    plain_ctx = GenContext(tuple(f"{h}:{p}" for h, p in target.addresses))
    for name in list(args)[:budget]:
        candidate = {k: v for k, v in args.items() if k != name}
        if symptom in probe(target, transport, dataclasses.replace(inp, args=candidate),
                            settle)["symptoms"]:
            args = candidate
    for name in list(args)[:budget]:
        plain = _valid(kinds.get(name, "key"), random.Random(0), plain_ctx)
        if plain == args[name]:
            continue
        candidate = {**args, name: plain}
        if symptom in probe(target, transport, dataclasses.replace(inp, args=candidate),
                            settle)["symptoms"]:
            args = candidate
    return f"{inp.op}({describe_args(args, 400)})"


def _rank(inputs: list[Input], symptom: str) -> list[Input]:
    """The families most likely to cause ``symptom`` first: numbers and sizes halt nodes,
    nesting and hand-made values crash decoders (a guess that only orders the replays)."""
    if symptom == "halt":
        order = {"extreme_int": 0, "huge": 1, "bad_enum": 2, "decimal": 3}
    elif symptom == "stall":
        order = {"decimal": 0, "huge": 1, "deep": 2, "deep_plain": 3}
    else:
        order = {"deep": 0, "huge": 1, "decimal": 2, "ext": 3, "bad_typed": 4}
    return sorted(inputs, key=lambda inp: order.get(inp.family, 9))


# -- one transport's run ----------------------------------------------------------------------


class TransportRun:
    """Fuzz one transport: fresh broker, idle baseline, hostile workers with a checker beside
    them, incidents healed and triaged as they happen, then settle, measure and report."""

    def __init__(self, target: Target, transport: str, opts: argparse.Namespace,
                 start_index: int) -> None:
        self.target = target
        self.transport = transport
        self.opts = opts
        self.start_index = start_index
        self.incidents: list[dict[str, Any]] = []
        self.findings: list[dict[str, Any]] = []
        self.worker_errors: list[str] = []
        self._last_progress = time.monotonic()
        self.hung = False
        self.cpu: dict[str, Any] = {}
        self.final_stats: dict[str, Any] = {}

    def run(self) -> dict[str, Any]:
        target, opts = self.target, self.opts
        target.start_broker(self.transport)
        endpoint = target.endpoint(self.transport)
        _create_hostile_caches(self.transport, endpoint)
        good = GoodWorker(endpoint, f"fuzz-good-{self.transport}", opts.seed)
        good.start()
        time.sleep(opts.idle_seconds)
        baseline = {"rss_kib": target.rss_kib(), "log_bytes": target.log_bytes()}
        if opts.trace_memory:  # objects counted now; allocations traced from now on
            assert target.broker is not None
            baseline["memory"] = target.broker.admin("memory")
            target.broker.admin(f"memory trace {opts.trace_memory}")
        campaign = Campaign(self.transport, endpoint, opts.seed, opts.count, self.start_index,
                            opts.max_request_bytes,
                            tuple(f"{h}:{p}" for h, p in target.addresses),
                            tuple(op for op in OPS if op not in opts.skip_ops))
        campaign.quarantine.update(_exclusions(opts.exclude))
        watch = Watch(target, campaign)
        cpu = CpuShares(self._processes(good))
        good.set_phase(FUZZ)
        began = time.monotonic()
        self._fuzz(campaign, watch, began + opts.max_seconds)
        elapsed = time.monotonic() - began
        good.set_phase(AFTER)
        self.cpu = cpu.shares()
        after = {"rss_kib": target.rss_kib(), "log_bytes": target.log_bytes()}
        time.sleep(opts.settle_seconds)
        after["rss_kib_settled"] = target.rss_kib()
        if opts.trace_memory:  # what was allocated while fuzzing and is still held
            assert target.broker is not None
            after["memory"] = target.broker.admin("memory")
            after["memory_after_trim"] = target.broker.admin("memory trim")
        lost, internal = watch.totals()
        good_summary = good.finish()
        if not self.hung and opts.post_triage:
            self._triage_conn_lost(campaign, watch)
            self._triage_stalls(watch)
        self.final_stats = _final_stats(target)
        exit_code = target.stop_broker()
        return self._report(campaign, watch, good_summary, baseline, after, elapsed, lost,
                            internal, exit_code)

    def _processes(self, good: GoodWorker) -> dict[str, int | None]:
        """The processes whose CPU the report shares out: who competes for the cores."""
        assert self.target.broker is not None and self.target.broker.proc is not None
        assert self.target.cluster is not None
        found: dict[str, int | None] = {
            "fuzzer (this process)": os.getpid(), "broker": self.target.broker.proc.pid,
            "well-behaved worker": good.proc.pid}
        for i, pid in enumerate(self.target.cluster.pids):
            found[f"node-{i}"] = pid
        return found

    def _fuzz(self, campaign: Campaign, watch: Watch, deadline: float) -> None:
        while True:
            workers = [HostileWorker(campaign, i, self.opts.window)
                       for i in range(self.opts.workers)]
            watch.workers = workers
            for worker in workers:
                worker.start()
            incident = watch.poll()
            while incident is None and any(w.is_alive() for w in workers):
                if time.monotonic() > deadline:
                    campaign.stop.set()
                time.sleep(0.2)
                incident = watch.poll()
                self._progress(campaign, watch)
            if incident is None and any(w.error for w in workers):
                time.sleep(1.0)  # a worker lost its connection: is the broker going down?
                incident = watch.poll()
            if incident is None:
                for worker in workers:
                    worker.join()
                self.worker_errors += [w.error for w in workers if w.error]
                return
            campaign.abort.set()
            campaign.stop.set()
            for worker in workers:
                worker.join(30)
            suspects = [inp for w in workers for inp in w.abandon()]
            if incident == "hang":  # nothing to heal it with short of a new cluster
                self.incidents.append({"kind": "hang", "at_input": campaign.tally.sent,
                                       "in_flight": len(suspects), "dead_nodes": [],
                                       "node_logs": self.target.node_log_tails()})
                self.hung = True
                return
            self._incident(incident, campaign, watch, suspects)
            if len(self.incidents) >= self.opts.max_incidents or time.monotonic() > deadline:
                return
            campaign.stop.clear()
            campaign.abort.clear()

    def _progress(self, campaign: Campaign, watch: Watch) -> None:
        """A line on stderr every 15 s, so a long run shows where it is."""
        now = time.monotonic()
        if now - self._last_progress < 15:
            return
        self._last_progress = now
        stats = watch.last_stats or {}
        print(f"[{self.transport}] {campaign.tally.sent} inputs, {len(self.incidents)} "
              f"incidents, node connections lost {stats.get('node_connections_lost')}, "
              f"internal {stats.get('internal_errors')}, RSS {watch.rss_peak} KiB peak",
              file=sys.stderr, flush=True)

    def _incident(self, kind: str, campaign: Campaign, watch: Watch,
                  in_flight: list[Input]) -> None:
        target = self.target
        record: dict[str, Any] = {"kind": kind, "at_input": campaign.tally.sent,
                                  "in_flight": len(in_flight)}
        exit_code = target.broker_exit()
        if exit_code is not None:
            record["exit_code"] = exit_code
            if exit_code < 0:
                record["signal"] = signal.Signals(-exit_code).name
            assert target.broker is not None
            record["log_tail"] = target.broker.log()[-1500:]
        dead = target.dead_nodes()
        record["dead_nodes"] = dead
        if dead:  # why a JVM went (heap, failure handler): gone with the cluster otherwise
            record["node_logs"] = target.node_log_tails(6000)
            record.update(target.keep_node_logs(dead))
        suspects = list(in_flight)
        if dead:
            recent = {i for t, i, _ in campaign.tally.suspicious if t > time.monotonic() - 10}
            gen = campaign.generator()
            suspects += [gen.make(i) for i in sorted(recent)]
            record["restarted_nodes"] = target.restart_dead_nodes()
        if exit_code is not None:
            target.restart_broker()
        else:
            assert target.broker is not None
            target.broker.wait_ready(len(target.addresses))
        watch.rebase()
        self.incidents.append(record)
        symptom = "crash" if exit_code is not None else "halt"
        if self.opts.triage_probes:
            found = triage(target, self.transport, _rank(suspects, symptom),
                           symptom, self.opts.triage_probes,
                           settle=0.3 if symptom == "crash" else 2.0, minimize=self.opts.shrink)
            watch.rebase()
            if found is not None:
                record["culprit"] = found["input"]
                self.findings.append(found)
                family, kind = found["signature"]
                campaign.quarantine.add((family, "*") if symptom == "crash" else (family, kind))

    def _triage_conn_lost(self, campaign: Campaign, watch: Watch) -> None:
        if not watch.conn_lost_events or not self.opts.triage_probes:
            return
        gen = campaign.generator()
        indices = []
        for event in watch.conn_lost_events:
            indices += [i for i, status in event["suspects"] if status == "CLUSTER_UNAVAILABLE"]
        suspects = [gen.make(i) for i in dict.fromkeys(reversed(indices))]
        tried: set[tuple[str, str]] = set()
        for _ in range(self.opts.conn_lost_causes):
            left = [s for s in suspects if s.signature not in tried]
            found = triage(self.target, self.transport, left, "conn_lost",
                           self.opts.triage_probes, minimize=self.opts.shrink)
            if found is None:
                return
            self.findings.append(found)
            tried.add(tuple(found["signature"]))  # type: ignore[arg-type]

    def _triage_stalls(self, watch: Watch) -> None:
        """The admin socket did not answer for 2 s: which input held the event loop?"""
        if not watch.stall_suspects or not self.opts.triage_probes:
            return
        found = triage(self.target, self.transport, _rank(watch.stall_suspects, "stall"),
                       "unanswered", self.opts.triage_probes, minimize=False)
        if found is not None:
            self.findings.append({**found, "symptom": "stall"})

    def _internal_log(self, limit: int = 5) -> list[str]:
        """The broker's log lines of the bugs it counted (what it could not decode, the
        exception): the broker's working directory goes with the run."""
        broker = self.target.broker
        try:
            lines = broker.log_path.read_text(errors="replace").splitlines() if broker else []
        except OSError:
            return []
        return [entry[:4000] for entry in _error_entries(lines)[:limit]]

    def _report(self, campaign: Campaign, watch: Watch, good: dict[str, Any],
                baseline: dict[str, Any], after: dict[str, Any], elapsed: float, lost: int,
                internal: int, exit_code: int | None) -> dict[str, Any]:
        tally = campaign.tally.summary()
        lat = good.get("latency_ms", {})
        idle99 = lat.get("idle", {}).get("p99")
        fuzz99 = lat.get("fuzzing", {}).get("p99")
        crashes = [i for i in self.incidents if "exit_code" in i]
        hangs = [i for i in self.incidents if i["kind"] == "hang"]
        halts = [i for i in self.incidents if i.get("dead_nodes")]
        return {
            "transport": self.transport, "elapsed_s": round(elapsed, 1),
            "inputs_per_s": round(tally["inputs_sent"] / max(elapsed, 1e-9), 1),
            **tally,
            "broker_crashes": len(crashes), "node_halts": len(halts),
            "cluster_hangs": len(hangs),
            "node_connections_lost": lost, "node_connections_lost_events": len(
                watch.conn_lost_events),
            "internal_errors": internal,
            "internal_log": self._internal_log() if internal else [],
            "internal_replies": tally["failure_counts"].get("internal", 0),
            "unanswered": tally["failure_counts"].get("unanswered", 0),
            "wrong_values": good.get("wrong_values", 0), "lost_writes": good.get("lost_writes", 0),
            "good_worker_errors": sum(good.get("errors", {}).values()) if "ops" in good else 1,
            "good_worker": good,
            "p99_ratio": round(fuzz99 / idle99, 2) if idle99 and fuzz99 else None,
            "slowest_during_cache_changes": _during_cache_changes(
                good.get("slowest_fuzzing", []), campaign.tally.cache_changes),
            "cache_changes": _change_figures(campaign.tally.cache_changes, elapsed),
            "cpu": self.cpu,
            "rss_kib": {"baseline": baseline["rss_kib"], "peak": watch.rss_peak,
                        "after": after["rss_kib"], "after_settle": after["rss_kib_settled"]},
            "memory": {"baseline": baseline.get("memory"), "settled": after.get("memory"),
                       "settled_after_trim": after.get("memory_after_trim")},
            "log_bytes": {"growth": after["log_bytes"] - baseline["log_bytes"],
                          "per_input": round((after["log_bytes"] - baseline["log_bytes"])
                                             / max(tally["inputs_sent"], 1), 1)},
            "admin_timeouts": watch.admin_timeouts, "incidents": self.incidents,
            "hostile_connections_closed_by_broker": self.worker_errors,
            "findings": self.findings, "quarantined": sorted(map(list, campaign.quarantine)),
            "broker_exit_on_sigterm": exit_code,
            "broker_stats_at_end": self.final_stats,
        }


def _during_cache_changes(slowest: list[tuple[float, float, int]],
                          changes: list[tuple[float, float]]) -> dict[str, Any]:
    """How many of the well-behaved worker's slowest requests overlapped a hostile cache start
    or stop (sent to answered), and their median latency with and without one."""
    ordered = sorted(changes)
    starts = [c[0] for c in ordered]
    latest_end = list(itertools.accumulate((c[1] for c in ordered), max))
    overlapping, apart = [], []
    for began, took, _ in slowest:
        i = bisect.bisect_right(starts, began + took) - 1  # changes begun before it ended
        (overlapping if i >= 0 and latest_end[i] >= began else apart).append(took)
    def median_ms(values: list[float]) -> float | None:
        return round(statistics.median(values) * 1000, 1) if values else None
    return {"slowest": len(slowest), "overlapping": len(overlapping),
            "median_ms_overlapping": median_ms(overlapping), "median_ms_apart": median_ms(apart)}


def _change_figures(changes: list[tuple[float, float]], elapsed: float) -> dict[str, Any]:
    """Hostile cache starts and stops answered OK: how many, how long each took (sent to
    answered, waits in the broker included) and their share of the fuzzing time (merged)."""
    took = sorted(end - start for start, end in changes)
    held, last_end = 0.0, float("-inf")
    for start, end in sorted(changes):
        held += max(0.0, end - max(start, last_end))
        last_end = max(last_end, end)
    return {"count": len(took), "median_ms": round(statistics.median(took) * 1000, 1)
            if took else None, "p90_ms": round(took[int(len(took) * 0.9)] * 1000, 1)
            if took else None, "share_of_time": round(held / max(elapsed, 1e-9), 4)}


class CpuShares:
    """CPU seconds each named process used between now and ``shares()``, as a share of one
    core, with the machine's load average: who competed for the cores while fuzzing."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.began = time.monotonic()
        self.start = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        self.machine = _machine_busy()

    def shares(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.began, 1e-9)
        out: dict[str, Any] = {}
        for name, pid in self.pids.items():
            before, now = self.start[name], _cpu_seconds(pid)
            out[name] = round((now - before) / elapsed, 2) if before is not None and \
                now is not None else None
        busy, total = _machine_busy(), self.machine
        out["machine busy (of all cores)"] = round(
            (busy[0] - total[0]) / max(busy[1] - total[1], 1), 2)
        out["cores"] = os.cpu_count()
        out["load average"] = Path("/proc/loadavg").read_text().split()[:3]
        return out


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process (its threads included), from /proc."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def _exclusions(specs: list[str]) -> set[tuple[str, str]]:
    return {(s.split(":", 1)[0], s.split(":", 1)[1] if ":" in s else "*") for s in specs}


def _create_hostile_caches(transport: str, endpoint: str) -> None:
    conn = connect(transport, endpoint)
    try:
        for i, name in enumerate(HOSTILE_CACHES):
            conn.send(ipc.pack_request(i + 1, "cache_get_or_create", {"name": name}))
        got = 0
        end = time.monotonic() + 30
        while got < len(HOSTILE_CACHES) and time.monotonic() < end:
            got += len(conn.recv(0.5))
    finally:
        conn.close()


# -- the whole run, the report, the command line ----------------------------------------------

#: The checks a run is judged by: report key and what it counts.
CHECKS = {
    "broker_crashes": "broker crashes (process exit, signal)",
    "node_halts": "node halts (a JVM gone)",
    "cluster_hangs": "clusters that stopped answering while their JVMs ran",
    "node_connections_lost": "dropped node connections (show stats)",
    "internal_errors": "INTERNAL answers counted by the broker (show stats)",
    "internal_replies": "INTERNAL answers the hostile workers received",
    "unanswered": "requests without a reply by their deadline",
    "wrong_values": "wrong values read by the well-behaved worker",
    "lost_writes": "writes of the well-behaved worker that failed (value maybe lost)",
    "good_worker_errors": "requests of the well-behaved worker that failed",
}


def run_fuzz(opts: argparse.Namespace) -> dict[str, Any]:
    """Run every transport asked for and return the report (also written to opts.report)."""
    workdir = Path(tempfile.mkdtemp(prefix="fuzz-broker-"))
    target = Target(opts, workdir)
    report: dict[str, Any] = {
        "seed": opts.seed, "count_per_transport": opts.count, "workers": opts.workers,
        "broker_settings": dict(opts.broker_setting),
        "window": opts.window, "max_request_bytes": opts.max_request_bytes,
        "ops": list(OPS), "transports": {}}
    target.start_cluster()
    try:
        report["nodes"] = len(target.addresses)
        for transport in _transports(opts.transport):
            result = TransportRun(target, transport, opts, opts.start_index).run()
            report["transports"][transport] = result
            _write(opts.report, report)
            if result["cluster_hangs"] and not opts.attach_cluster:
                target.stop_cluster()  # a hung cluster cannot serve the next transport
                target.start_cluster()
    finally:
        with contextlib.suppress(Exception):
            if target.broker is not None and target.broker_exit() is None:
                target.stop_broker()
        target.stop_cluster()
        if not opts.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    report["findings"] = _distinct_findings(report)
    _write(opts.report, report)
    return report


def _final_stats(target: Target) -> dict[str, Any]:
    """What the broker says at the end: replies it could not deliver, requests it holds."""
    try:
        assert target.broker is not None
        stats = target.broker.admin("show stats")
    except Exception as exc:  # a dead broker is reported elsewhere
        return {"error": str(exc)}
    assert isinstance(stats, dict)
    return {k: stats.get(k) for k in ("replies_dropped", "in_flight", "internal_errors")}


def _transports(choice: str) -> list[str]:
    return ["unix", "ipc"] if choice == "both" else [choice]


def _write(path: str | None, report: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=1, default=repr))


def _distinct_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per (symptom, op, family, kind) across transports, with an example input."""
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for transport, result in report["transports"].items():
        for found in result["findings"]:
            inp = found["input"]
            key = (found["symptom"], found.get("minimal") or inp["op"] + inp["family"])
            entry = out.setdefault(key, {"symptom": found["symptom"], "example": inp,
                                         "minimal": found.get("minimal"),
                                         "reply": found.get("reply_status"),
                                         "reply_message": found.get("reply_message"),
                                         "transports": []})
            entry["transports"].append(transport)
        for symptom in ("internal", "unanswered"):
            for example in result["failures"].get(symptom, []):
                if example.get("matched", "by id") != "by id":
                    continue  # a reply matched by order: the input is only a guess
                key = (symptom, example["op"], example["family"], example.get("arg") or "-")
                entry = out.setdefault(key, {"symptom": symptom, "example": example,
                                             "transports": []})
                if transport not in entry["transports"]:
                    entry["transports"].append(transport)
    return list(out.values())


def summary_text(report: dict[str, Any]) -> str:
    lines = [f"fuzz_broker seed={report['seed']} nodes={report.get('nodes')} "
             f"workers={report['workers']}x{report['window']} "
             f"max_request_bytes={report['max_request_bytes']}"]
    for transport, r in report["transports"].items():
        lat = r["good_worker"].get("latency_ms", {})
        rss = r["rss_kib"]
        lines += [
            f"[{transport}] {r['inputs_sent']} inputs in {r['elapsed_s']} s "
            f"({r['inputs_per_s']}/s), {r['inputs_skipped_quarantined']} quarantined",
            f"  replies: {r['replies_by_status']}",
            *(f"  {name:24} {r[name]}" for name in CHECKS),
            f"  late replies (unanswered, then answered within {LATE_WAIT_S:g} s): "
            f"{r['late_replies']}; broker at the end: {r.get('broker_stats_at_end')}",
            f"  well-behaved p50/p99 ms: idle {_lat(lat.get('idle'))}, "
            f"fuzzing {_lat(lat.get('fuzzing'))}, after {_lat(lat.get('after'))}; "
            f"p99 ratio {r['p99_ratio']}; errors {r['good_worker'].get('errors')}",
            f"  broker RSS KiB: baseline {rss['baseline']} peak {rss['peak']} after "
            f"{rss['after']} settled {rss['after_settle']}",
            f"  amplification: max {r['amplification']['max_ratio']}x, errors "
            f"{r['amplification']['max_error_ratio']}x, largest reply "
            f"{r['amplification']['max_reply_bytes']} B; log +{r['log_bytes']['growth']} B "
            f"({r['log_bytes']['per_input']} B/input)",
        ]
        for incident in r["incidents"]:
            culprit = incident.get("culprit")
            lines.append(f"  incident {incident['kind']} (exit {incident.get('exit_code')}, "
                         f"{incident.get('signal', '')}, dead nodes {incident['dead_nodes']}): "
                         f"{_short(culprit) if culprit else 'culprit not found'}")
    lines.append("distinct findings:")
    for found in report.get("findings", []):
        what = found.get("minimal") or _short(found["example"])
        lines.append(f"  {found['symptom']:10} {','.join(found['transports']):8} {what}"
                     f"  -> {found.get('reply')}: {found.get('reply_message')}")
    return "\n".join(lines)


def _lat(p: dict[str, Any] | None) -> str:
    return f"{p['p50']}/{p['p99']}" if p and p.get("count") else "-"


def _short(inp: dict[str, Any]) -> str:
    extra = f" special={inp['special']}" if inp.get("special") else ""
    extra += f" envelope={inp['envelope']}" if inp.get("envelope") else ""
    return f"#{inp['index']} {inp['op']} [{inp['family']}:{inp.get('arg')}]{extra} " \
           f"{inp['args']}"


def replay(opts: argparse.Namespace) -> int:
    """Send the given inputs one at a time against a fresh broker and print what each did."""
    workdir = Path(tempfile.mkdtemp(prefix="fuzz-broker-replay-"))
    target = Target(opts, workdir)
    target.start_cluster()
    try:
        for transport in _transports(opts.transport):
            target.start_broker(transport)
            gen = Generator(opts.seed, opts.max_request_bytes, transport,
                            GenContext(tuple(f"{h}:{p}" for h, p in target.addresses)))
            for index in opts.replay:
                inp = gen.make(index)
                outcome = probe(target, transport, inp, settle=opts.replay_settle)
                print(json.dumps({"transport": transport, "input": inp.describe(), **outcome},
                                 default=repr))
            target.stop_broker()
    finally:
        target.stop_cluster()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.integration.fuzz_broker",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--transport", choices=("unix", "ipc", "both"), default="both")
    p.add_argument("--count", type=int, default=10_000, help="inputs per transport")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start-index", type=int, default=0, help="first input index")
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--base-port", type=int, default=14800)
    p.add_argument("--attach-cluster", type=int, metavar="BASE_PORT",
                   help="use the dev cluster already running on this base port")
    p.add_argument("--workers", type=int, default=4, help="hostile connections")
    p.add_argument("--window", type=int, default=16, help="requests in flight per connection")
    p.add_argument("--max-request-bytes", type=int, default=1 << 20,
                   help="the broker's limits.max_request_bytes (huge inputs go up to it)")
    p.add_argument("--max-seconds", type=float, default=900.0, help="per transport")
    p.add_argument("--idle-seconds", type=float, default=3.0)
    p.add_argument("--settle-seconds", type=float, default=5.0)
    p.add_argument("--max-incidents", type=int, default=12,
                   help="crashes/halts healed per transport before its run stops")
    p.add_argument("--triage-probes", type=int, default=40,
                   help="suspects replayed alone per incident (0: no triage)")
    p.add_argument("--no-shrink", dest="shrink", action="store_false",
                   help="report triaged inputs as found, without minimizing them")
    p.add_argument("--no-post-triage", dest="post_triage", action="store_false",
                   help="after the run, do not look for the causes of dropped node "
                        "connections and event-loop stalls")
    p.add_argument("--conn-lost-causes", type=int, default=5,
                   help="distinct causes of dropped node connections looked for after a run")
    p.add_argument("--exclude", action="append", default=[], metavar="FAMILY[:KIND]",
                   help="do not send inputs of this mutation family (and argument kind), "
                        "e.g. deep (known crash) or extreme_int:count; repeatable")
    p.add_argument("--skip-ops", type=lambda s: set(s.split(",")), default=set(),
                   help="comma-separated ops never sent (e.g. tx_start, see docs/reliability.md)")
    p.add_argument("--report", help="write the JSON report here")
    p.add_argument("--broker-setting", action="append", default=[], type=_setting,
                   metavar="NAME=VALUE", help="a broker setting other than the defaults, e.g. "
                   "limits.cache_changes_duty=0.005; repeatable")
    p.add_argument("--trace-memory", type=int, default=0, metavar="FRAMES",
                   help="trace the broker's allocations (tracemalloc, FRAMES deep) from the "
                        "baseline on and report what is still held after the settle (slows "
                        "the broker: not for latency figures)")
    p.add_argument("--keep-workdir", action="store_true")
    p.add_argument("--replay", type=lambda s: [int(x) for x in s.split(",")],
                   help="comma-separated input indices: send each alone, print what it did")
    p.add_argument("--replay-settle", type=float, default=1.0)
    return p.parse_args(argv)


def _setting(text: str) -> tuple[str, Any]:
    """NAME=VALUE with VALUE read as TOML (a number, a string in quotes, true/false)."""
    import tomllib

    name, _, value = text.partition("=")
    return name.strip(), tomllib.loads(f"v = {value.strip()}")["v"]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")



def _error_entries(lines: list[str]) -> list[str]:
    """Each "[error" log line with the traceback lines under it (up to the next record):
    the exception is what tells one bug from another."""
    entries: list[str] = []
    in_error = False
    for line in lines:
        if "[error" in line:
            entries.append(line)
            in_error = True
        elif line[:4].isdigit():  # a timestamp: the next record
            in_error = False
        elif in_error and len(entries[-1]) < 4000:
            entries[-1] += "\n" + line
    return entries


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # tear the cluster and the broker down too
    opts = parse_args(argv)
    if opts.replay:
        return replay(opts)
    report = run_fuzz(opts)
    print(summary_text(report))
    failed = any(r[name] for r in report["transports"].values() for name in CHECKS)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
