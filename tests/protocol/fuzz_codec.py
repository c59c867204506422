#!/usr/bin/env python3
"""Fuzz the codec's parsers: the only exception arbitrary server bytes may raise is ProtocolError.

Not collected by pytest (no ``test_`` prefix). Inputs are random bytes and mutations of the
captured/handwritten vectors in tests/protocol/vectors/*.json, fed to:

- ``conn``: a ClientConnection after a handshake (1.7.0 with features, and 1.0.0), with
  requests 1..64 in flight, in random chunks; every Response body then goes through
  ``ops.parse_value``;
- ``handshake``: a ClientConnection waiting for its handshake answer;
- ``decode_value``: ``protocol.binary.decode_value``, with and without a CodecContext;
- ``affinity.encoded_*``: the key hashes computed from encoded keys;
- ``parse:<module>.<name>``: every ``parse_*`` function of protocol.affinity and
  protocol.ops (and, with ``--all-parsers``, the other op modules);
- ``ipc.unpack_request`` / ``ipc.unpack_reply``: mutated worker/broker frames (deep ext and
  plain nesting, decimals at the digit bound), where IpcError is the allowed refusal;
- ``builders``: every request builder with one argument replaced by whatever a mutated
  msgpack value decodes to (or a hostile value), where LocalProtocolError is the allowed one.

    .venv/bin/python tests/protocol/fuzz_codec.py --count 1000000 [--seed 1] [--out crashes.json]

A crash is any other exception (or an input taking longer than ``--slow`` seconds);
crashes are grouped by target, exception type and the raising line, each with its
smallest reproducer. The exit status is 1 when anything crashed.
"""

from __future__ import annotations

import argparse
import contextlib
import decimal
import importlib
import inspect
import json
import random
import signal
import struct
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from protocol import (
    NEED_DATA,
    ClientConnection,
    ConnectionConfig,
    ProtocolError,
    Response,
    ipc,
    ops,
)
from protocol.affinity import encoded_affinity_hash, encoded_key_hash
from protocol.binary import decode_value, encode_value
from protocol.binary.metadata import object_type
from protocol.binary.registry import CodecContext, Registry
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
from protocol.hashing import field_id, type_id
from protocol.limits import MAX_DECIMAL_DIGITS, MAX_NESTING
from tests.protocol.test_bounds import BUILDERS, HOSTILE

VECTOR_DIR = Path(__file__).parent / "vectors"
OP_MODULES = ("protocol.affinity", "protocol.ops")
MORE_MODULES = ("protocol.cacheconfig", "protocol.cluster", "protocol.queries", "protocol.tx",
                "protocol.binary.metadata")
INTERESTING_I32 = (0, 1, -1, 2, 7, 127, 128, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
                   2**31 - 1, -(2**31), 2**30, -2)
IN_FLIGHT = 64
NODE = uuid.UUID("8f1c2a3b-4d5e-4f60-8172-93a4b5c6d7e8")

Target = Callable[[bytes, random.Random], None]


# -- seeds ------------------------------------------------------------------------------------


@dataclass
class Seeds:
    frames: list[bytes] = field(default_factory=list)  # whole response frames (length first)
    handshakes: list[bytes] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)  # single typed values
    bodies: list[bytes] = field(default_factory=list)  # response bodies (after the header)
    partitions: list[bytes] = field(default_factory=list)  # CACHE_PARTITIONS bodies

    def all(self) -> list[bytes]:
        return self.frames + self.handshakes + self.values + self.bodies


def load_seeds(directory: Path = VECTOR_DIR) -> Seeds:
    seeds = Seeds()
    for path in sorted(directory.glob("*.json")):
        doc = json.loads(path.read_text("utf-8"))
        for case in doc.get("values", []):
            seeds.values.append(bytes.fromhex(case["hex"]))
        for session in doc.get("sessions", []):
            for step in session["steps"]:
                frame = bytes.fromhex(step["response_hex"])
                if step["send"]["kind"] == "handshake":
                    seeds.handshakes.append(frame)
                else:
                    seeds.frames.append(frame)
                    if len(frame) >= 14:
                        seeds.bodies.append(frame[14:])
        for answer in doc.get("affinity", []):
            seeds.partitions.append(bytes.fromhex(answer["response_body_hex"]))
        for probe in doc.get("probes", [])[::7]:
            seeds.values.append(bytes.fromhex(probe["key_hex"]))
    seeds.partitions += small_partition_answers()
    seeds.bodies += seeds.partitions
    return seeds


def encoded_samples(ctx: CodecContext) -> list[bytes]:
    """Nested values written by protocol.binary: deeper seeds than the captured primitives."""
    when = Timestamp(1_700_000_000_000, 5)
    inner = BinaryObject(type_id("FuzzKey"), {"id": 1, "name": "é😀", "when": when, "next": None},
                         "FuzzKey")
    outer = BinaryObject(type_id("FuzzKey"), {"id": 2, "name": "x", "when": when, "next": inner},
                         "FuzzKey")
    samples: list[Any] = [
        Collection(1, [1, "two", 3.0, None, True]),
        Map(1, [("k", 1), (2, [Date(5)]), (uuid.UUID(int=7), decimal.Decimal("-1.50"))]),
        ObjectArray(-1, ["a", 1, None]),
        Typed(14, [1, 2, 3]), Typed(20, ["a", None, "b"]), Typed(21, [uuid.UUID(int=1)]),
        Typed(31, [decimal.Decimal("3.14")]), Typed(34, [when]), Typed(19, [True, False]),
        EnumValue(type_id("FuzzEnum"), 2), Time(1000), outer, inner,
        Collection(3, [inner, Map(2, [(inner, outer)])]),
    ]
    out = []
    for compact in (True, False):
        ctx.compact_footer = compact
        for value in samples:
            with contextlib.suppress(ProtocolError):
                out.append(encode_value(value, ctx=ctx))
    for binary_type in ctx.take_pending():
        ctx.registry.add(binary_type)
    ctx.compact_footer = True
    return out


def small_partition_answers() -> list[bytes]:
    """Short CACHE_PARTITIONS bodies (captured ones are kilobytes): every group shape."""
    node = b"\x0a" + struct.pack("<QQ", NODE.int >> 64, NODE.int & (2**64 - 1))
    applicable = (b"\x01" + struct.pack("<iiiiiii", 2, 10, 0, 11, 1, 1234, 5678)
                  + struct.pack("<i", 1) + node + struct.pack("<iiii", 3, 0, 1, 2))
    not_applicable = b"\x00" + struct.pack("<iii", 2, 20, 21)
    head = struct.pack("<qi", 5, 1)
    return [
        head + struct.pack("<i", 0),
        head + struct.pack("<i", 1) + applicable,
        head + struct.pack("<i", 2) + applicable + b"\x01" + not_applicable,  # bit 13 layout
        head + struct.pack("<i", 2) + not_applicable + applicable,
    ]


# -- mutations ------------------------------------------------------------------------------------


def _flip(data: bytearray, rnd: random.Random) -> None:
    if data:
        i = rnd.randrange(len(data))
        data[i] ^= 1 << rnd.randrange(8)


def _set_byte(data: bytearray, rnd: random.Random) -> None:
    if data:
        data[rnd.randrange(len(data))] = rnd.choice((0, 1, 0x65, 0x67, 0x7F, 0x80, 0xFF,
                                                     rnd.randrange(256)))


def _set_i32(data: bytearray, rnd: random.Random) -> None:
    if len(data) >= 4:
        i = rnd.randrange(len(data) - 3)
        data[i : i + 4] = struct.pack("<i", rnd.choice(INTERESTING_I32))


def _insert(data: bytearray, rnd: random.Random) -> None:
    i = rnd.randrange(len(data) + 1)
    data[i:i] = rnd.randbytes(rnd.randint(1, 8))


def _delete(data: bytearray, rnd: random.Random) -> None:
    if data:
        i = rnd.randrange(len(data))
        del data[i : i + rnd.randint(1, 8)]


def _duplicate(data: bytearray, rnd: random.Random) -> None:
    if data:
        i = rnd.randrange(len(data))
        j = min(len(data), i + rnd.randint(1, 32))
        data[j:j] = data[i:j]


def _truncate(data: bytearray, rnd: random.Random) -> None:
    if data:
        del data[rnd.randrange(len(data)) :]


MUTATORS = (_flip, _flip, _set_byte, _set_byte, _set_i32, _set_i32, _insert, _delete,
            _duplicate, _truncate)


def inputs(seeds: list[bytes], rnd: random.Random) -> Iterator[bytes]:
    """An endless stream: mostly mutated seeds, some splices, some plain random bytes."""
    while True:
        roll = rnd.random()
        if roll < 0.1 or not seeds:
            yield rnd.randbytes(rnd.randint(0, 48))
            continue
        data = bytearray(rnd.choice(seeds))
        if roll < 0.18:
            other = rnd.choice(seeds)
            data[rnd.randrange(len(data) + 1) :] = other[rnd.randrange(len(other) + 1) :]
        for _ in range(rnd.choice((1, 1, 1, 2, 3, 5))):
            rnd.choice(MUTATORS)(data, rnd)
        yield bytes(data)


# -- IPC seeds and targets ------------------------------------------------------------------


def ipc_seeds() -> list[bytes]:
    """Requests and replies as workers and the broker send them, some at the nesting and
    decimal bounds (mutations then cross them)."""
    deep_ext: Any = 1
    deep_plain: Any = 1
    for _ in range(MAX_NESTING - 2):
        deep_ext = Collection(1, [deep_ext])
        deep_plain = [deep_plain]
    big = decimal.Decimal("-" + "7" * MAX_DECIMAL_DIGITS + "E-9")
    args: list[dict[str, Any]] = [
        {"cache": "c", "key": "k"},
        {"cache": 5, "key": 1, "value": b"v", "expiry": [-2, -1, 0], "tx": 1},
        {"cache": "c", "pairs": [[1, "a"], [Typed(3, 2), Timestamp(5, 6)]]},
        {"cache": "c", "value": deep_ext}, {"cache": "c", "value": deep_plain},
        {"cache": "c", "value": big},
        {"cache": "c", "value": Map(1, [(uuid.UUID(int=3), Date(1))])},
        {"query": "select ?", "args": [1, "x"], "page_size": 10, "partitions": [1]},
        {"config": {0: "c", 1: 2, 401: [["T", "f"]]}},
    ]
    frames = [ipc.pack_request(i, "cache_put", a, i) for i, a in enumerate(args)]
    frames += [ipc.pack_reply(i, 0, a.get("value")) for i, a in enumerate(args)]
    return frames


def target_ipc(unpack: Callable[[bytes], Any]) -> Target:
    def run(data: bytes, rnd: random.Random) -> None:
        with contextlib.suppress(ipc.IpcError):
            unpack(data)

    return run


def target_builders(data: bytes, rnd: random.Random) -> None:
    """One builder, one argument replaced: by the value a mutated frame decodes to."""
    try:
        value = ipc.unpack(data)
    except ipc.IpcError:
        value = rnd.choice(list(HOSTILE.values()))
    if isinstance(value, list) and len(value) == 5 and isinstance(value[4], dict) and value[4]:
        value = rnd.choice(list(value[4].values()))  # an argument of a request
    func, kwargs = BUILDERS[rnd.choice(list(BUILDERS))]
    func(**{**kwargs, rnd.choice(list(kwargs)): value})


# -- targets ---------------------------------------------------------------------------------


def _registry_context() -> CodecContext:
    registry = Registry()
    registry.add(object_type("FuzzKey", [("id", 3), ("name", 9), ("when", 33), ("next", 103)]))
    registry.add(object_type("AffinityLiveKey", [("id", 3), ("grp", 3), ("note", 9)]))
    return CodecContext(registry)


def _handshake_answer(version: tuple[int, int, int]) -> bytes:
    payload = b"\x01"
    if version >= (1, 7, 0):
        payload += b"\x0c" + struct.pack("<i", 2) + b"\x0c\x28"  # bits 2, 3, 11, 13
    if version >= (1, 4, 0):
        payload += b"\x0a" + struct.pack("<QQ", NODE.int >> 64, NODE.int & (2**64 - 1))
    return struct.pack("<i", len(payload)) + payload


def _ready(version: tuple[int, int, int]) -> ClientConnection:
    conn = ClientConnection(ConnectionConfig(versions=(version,)))
    conn.initiate()
    conn.receive_data(_handshake_answer(version))
    conn.next_event()
    for _ in range(IN_FLIGHT):
        conn.send_request(1000, b"")
    return conn


def _chunks(data: bytes, rnd: random.Random) -> list[bytes]:
    if rnd.random() < 0.5 or len(data) < 2:
        return [data]
    cuts = sorted(rnd.sample(range(1, len(data)), min(len(data) - 1, rnd.randint(1, 4))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def _drain(conn: ClientConnection, ctx: CodecContext) -> None:
    for _ in range(10_000):
        event = conn.next_event()
        if event is NEED_DATA:
            return
        if isinstance(event, Response):
            with contextlib.suppress(ProtocolError):
                ops.parse_value(event.body, ctx)
        elif type(event).__name__ == "ConnectionClosed":
            return


def target_connection(version: tuple[int, int, int], ctx: CodecContext) -> Target:
    def run(data: bytes, rnd: random.Random) -> None:
        conn = _ready(version)
        if len(data) >= 4 and rnd.random() < 0.5:  # a consistent length gets past the framing
            data = struct.pack("<i", len(data) - 4) + data[4:]
        for chunk in _chunks(data, rnd):
            conn.receive_data(chunk)
            _drain(conn, ctx)
        if rnd.random() < 0.3:
            conn.receive_data(b"")  # EOF
            _drain(conn, ctx)

    return run


def target_handshake(data: bytes, rnd: random.Random) -> None:
    conn = ClientConnection(ConnectionConfig(versions=((1, 7, 0), (1, 4, 0), (1, 0, 0))))
    conn.initiate()
    for chunk in _chunks(data, rnd):
        conn.receive_data(chunk)
        while (event := conn.next_event()) is not NEED_DATA:
            if type(event).__name__ == "ConnectionClosed":
                return


def target_decode(ctx: CodecContext | None) -> Target:
    def run(data: bytes, rnd: random.Random) -> None:
        decode_value(data, ctx=ctx)

    return run


def _bind(fn: Callable[..., Any], ctx: CodecContext) -> Target:
    """Call a parser with plausible extra arguments, varied per input."""
    params = inspect.signature(fn).parameters

    def run(data: bytes, rnd: random.Random) -> None:
        kwargs: dict[str, Any] = {}
        if "ctx" in params:
            kwargs["ctx"] = ctx if rnd.random() < 0.8 else None
        if "version" in params:
            kwargs["version"] = rnd.choice(((1, 7, 0), (1, 6, 0), (1, 2, 0), (1, 0, 0)))
        if "features" in params:
            kwargs["features"] = rnd.choice((frozenset(), frozenset({2, 3, 11, 13})))
        if "include_field_names" in params:
            kwargs["include_field_names"] = rnd.random() < 0.5
        if "column_count" in params:
            kwargs["column_count"] = rnd.randint(0, 5)
        fn(data, **kwargs)

    return run


def parser_targets(modules: tuple[str, ...], ctx: CodecContext) -> dict[str, Target]:
    targets: dict[str, Target] = {}
    seen: set[int] = set()
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in sorted(dir(module)):
            fn = getattr(module, name)
            if name.startswith("parse_") and callable(fn) and id(fn) not in seen:
                seen.add(id(fn))
                targets[f"parse:{module_name.removeprefix('protocol.')}.{name}"] = _bind(fn, ctx)
    return targets


# -- the loop ----------------------------------------------------------------------------------


@dataclass
class Crash:
    target: str
    error: str
    where: str
    count: int
    reproducer: bytes

    def as_json(self) -> dict[str, Any]:
        return {"target": self.target, "error": self.error, "where": self.where,
                "count": self.count, "input_hex": self.reproducer.hex()}


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in frames if "/protocol/" in f.filename and "/tests/" not in f.filename]
    inside = inside or frames
    last = inside[-1]
    return f"{Path(last.filename).name}:{last.lineno} ({last.name})"


class Hang(Exception):
    """Raised by the interval timer inside an input that runs too long."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise Hang("input still running after the --slow limit")


def fuzz(count: int, seed: int, all_parsers: bool, slow: float
         ) -> tuple[dict[Any, Crash], dict[str, int], float]:
    signal.signal(signal.SIGALRM, _on_alarm)
    rnd = random.Random(seed)
    seeds = load_seeds()
    ctx = _registry_context()
    extra = encoded_samples(ctx)
    seeds.values += extra
    seeds.bodies += extra
    targets: dict[str, tuple[Target, list[bytes]]] = {
        "conn-1.7.0": (target_connection((1, 7, 0), ctx), seeds.frames),
        "conn-1.0.0": (target_connection((1, 0, 0), ctx), seeds.frames),
        "handshake": (target_handshake, seeds.handshakes),
        "decode_value": (target_decode(None), seeds.values),
        "decode_value+ctx": (target_decode(ctx), seeds.values),
    }
    ipc_frames = ipc_seeds()
    targets["ipc.unpack_request"] = (target_ipc(ipc.unpack_request), ipc_frames)
    targets["ipc.unpack_reply"] = (target_ipc(ipc.unpack_reply), ipc_frames)
    targets["builders"] = (target_builders, ipc_frames)
    configs = {type_id("FuzzKey"): field_id("name"), type_id("AffinityLiveKey"): field_id("grp")}
    targets["affinity.encoded_key_hash"] = (lambda d, r: encoded_key_hash(d), seeds.values)
    targets["affinity.encoded_affinity_hash"] = (
        lambda d, r: encoded_affinity_hash(d, configs, ctx), seeds.values)
    modules = OP_MODULES + (MORE_MODULES if all_parsers else ())
    for name, fn in parser_targets(modules, ctx).items():
        pool = seeds.partitions if "parse_cache_partitions" in name else seeds.bodies + seeds.values
        targets[name] = (fn, pool)
    streams = {name: inputs(pool or seeds.all(), random.Random(rnd.random()))
               for name, (_, pool) in targets.items()}
    names = list(targets)
    crashes: dict[Any, Crash] = {}
    counts = dict.fromkeys(names, 0)
    started = time.monotonic()
    for i in range(count):
        name = names[i % len(names)]
        data = next(streams[name])
        counts[name] += 1
        signal.setitimer(signal.ITIMER_REAL, slow)
        try:
            targets[name][0](data, rnd)
        except ProtocolError:
            pass
        except Exception as exc:  # the whole point: anything else is a bug (or a hang)
            _record(crashes, name, f"{type(exc).__name__}: {exc}"[:160], _where(exc), data,
                    (name, type(exc).__name__, _where(exc)))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if (i + 1) % 100_000 == 0:
            rate = (i + 1) / (time.monotonic() - started)
            print(f"  {i + 1:>9} inputs, {rate:,.0f}/s, {len(crashes)} distinct crashes",
                  file=sys.stderr)
    return crashes, counts, time.monotonic() - started


def _record(crashes: dict[Any, Crash], target: str, error: str, where: str, data: bytes,
            key: Any) -> None:
    crash = crashes.get(key)
    if crash is None:
        crashes[key] = Crash(target, error, where, 1, data)
        return
    crash.count += 1
    if len(data) < len(crash.reproducer):
        crash.reproducer = data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="inputs in total")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--all-parsers", action="store_true",
                        help="also fuzz the parsers of " + ", ".join(MORE_MODULES))
    parser.add_argument("--slow", type=float, default=1.0, help="seconds that count as a hang")
    parser.add_argument("--out", type=Path, help="write the crashes here as JSON")
    args = parser.parse_args()
    crashes, counts, seconds = fuzz(args.count, args.seed, args.all_parsers, args.slow)
    total = sum(counts.values())
    print(f"{total} inputs over {len(counts)} targets in {seconds:.1f} s "
          f"({total / seconds:,.0f}/s), seed {args.seed}: {len(crashes)} distinct crashes")
    for crash in sorted(crashes.values(), key=lambda c: (c.target, c.where)):
        print(f"- {crash.target}: {crash.error} at {crash.where} "
              f"x{crash.count}; input {crash.reproducer.hex()}")
    if args.out:
        args.out.write_text(json.dumps([c.as_json() for c in crashes.values()], indent=1) + "\n")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
