"""Partition awareness against 3 real nodes: our mapping must name the node that holds each key.

Every key is put, then looked up with CACHE_LOCAL_PEEK on each node's own connection (the
caches have no backups, and 2.17 peeks with ALL, so exactly one node holds it: the primary).
Keys are encoded here with ``struct`` (independent of protocol/'s encoders) and routed both
from the Python value (``AffinityMapping.node_for``) and from those bytes
(``node_for_encoded``). Caches with 1000 and 37 partitions cannot be made through the thin
client (its cache configuration has no affinity function), so a short-lived Java thick
client creates them (``make_odd_partition_caches``).

Also a capture tool for the pure tests' vectors, against a dev cluster started by hand::

    python -m broker.devcluster start --nodes 3 --base-port 11250
    .venv/bin/python tests/integration/test_affinity_live.py --base-port 11250 \\
        --out tests/protocol/vectors/affinity_ignite_2.17.0.json
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import json
import math
import random
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from protocol import (
    DEFAULT_FEATURES,
    NEED_DATA,
    ClientConnection,
    ConnectionConfig,
    ErrorResponse,
    HandshakeAccepted,
    OpCode,
    Response,
    affinity,
    cache_id,
    hashing,
)
from protocol.binary.values import (
    BinaryObject,
    Date,
    EnumValue,
    Time,
    Timestamp,
    Typed,
)
from protocol.features import Feature

pytestmark = pytest.mark.integration

FEATURES = frozenset(DEFAULT_FEATURES | {Feature.ALL_AFFINITY_MAPPINGS})
TOTAL_KEYS = 10_000
KEYED_TYPE = "AffinityLiveKey"  # its "grp" field is the affinity key of the keyed cache
KEYED_FIELD = "grp"
COMPACT_TYPE = "AffinityLiveCompactKey"  # written by protocol.binary (compact footers)
CACHES = {
    "default": "aff-live-default",  # created by name: 1024 partitions
    "parts1000": "aff-live-parts1000",  # thick client: RendezvousAffinityFunction(false, 1000)
    "parts37": "aff-live-parts37",
    "keyed": "aff-live-keyed",  # KEY_CONFIGURATION (AffinityLiveKey, grp)
    "compact": "aff-live-compact",  # KEY_CONFIGURATION (AffinityLiveCompactKey, region)
    "replicated": "aff-live-replicated",
}
ODD_PARTITIONS = {"parts1000": 1000, "parts37": 37}
NULL = 0x65
WINDOW = 2000  # requests in flight per connection


# -- a blocking socket driving our sans-IO connection ---------------------------------------------


class RawNode:
    """One node's thin-client connection; requests are pipelined and matched by request id."""

    def __init__(self, address: tuple[str, int], features: frozenset[int] = FEATURES) -> None:
        self.sock = socket.create_connection(address, timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = ClientConnection(ConnectionConfig(features=features))
        self.sock.sendall(self.conn.initiate())
        event = self._next_event()
        assert isinstance(event, HandshakeAccepted), event
        assert event.node_id is not None
        self.node_id: uuid.UUID = event.node_id
        self.features = event.features

    def close(self) -> None:
        self.sock.close()

    def _next_event(self) -> Any:
        while (event := self.conn.next_event()) is NEED_DATA:
            data = self.sock.recv(1 << 20)
            self.conn.receive_data(data)
        return event

    def send_many(self, requests: Sequence[tuple[int, bytes]]) -> list[int]:
        out = bytearray()
        ids = []
        for op, body in requests:
            request_id, data = self.conn.send_request(op, body)
            ids.append(request_id)
            out += data
        self.sock.sendall(out)
        return ids

    def receive_many(self, ids: Sequence[int]) -> list[Response | ErrorResponse]:
        got: dict[int, Response | ErrorResponse] = {}
        while len(got) < len(ids):
            event = self._next_event()
            assert isinstance(event, Response | ErrorResponse), event
            got[event.request_id] = event
        return [got[i] for i in ids]

    def call_many(self, requests: Sequence[tuple[int, bytes]]) -> list[Response | ErrorResponse]:
        results: list[Response | ErrorResponse] = []
        for start in range(0, len(requests), WINDOW):
            results += self.receive_many(self.send_many(requests[start : start + WINDOW]))
        return results

    def call(self, op: int, body: bytes = b"") -> Response:
        (event,) = self.call_many([(op, body)])
        assert isinstance(event, Response), event
        return event


# -- keys, encoded by hand ------------------------------------------------------------------------

_FIXED = {1: "b", 2: "h", 3: "i", 4: "q", 5: "f", 6: "d"}
_AUTO = {bool: 8, int: 4, float: 6, str: 9, uuid.UUID: 10, decimal.Decimal: 30, Timestamp: 33,
         Date: 11, Time: 36, EnumValue: 28}


def enc_str(s: str) -> bytes:
    data = s.encode("utf-8")
    return b"\x09" + struct.pack("<i", len(data)) + data


def enc_decimal(d: decimal.Decimal) -> bytes:
    """Java's writer: scale, then toByteArray() of |unscaled| with 0x80 ORed in when negative."""
    sign, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)
    magnitude = int(decimal.Decimal((0, digits, 0)))
    raw = bytearray(magnitude.to_bytes(magnitude.bit_length() // 8 + 1, "big"))
    if sign and magnitude:
        raw[0] |= 0x80
    return b"\x1e" + struct.pack("<ii", -exponent, len(raw)) + raw


def enc_key(value: Any, code: int | None = None) -> bytes:
    """A typed value as the server receives it; complex keys come from enc_object."""
    if type(value) is Typed:
        return enc_key(value.value, value.type_code)
    code = _AUTO[type(value)] if code is None else code
    if code in _FIXED:
        return struct.pack("<b" + _FIXED[code], code, value)
    simple = {
        7: lambda: struct.pack("<bH", 7, ord(value)),
        8: lambda: bytes([8, 1 if value else 0]),
        9: lambda: enc_str(value),
        10: lambda: b"\x0a" + struct.pack("<QQ", value.int >> 64, value.int & (2**64 - 1)),
        30: lambda: enc_decimal(value),
        33: lambda: struct.pack("<bqi", 33, value.epoch_ms, value.nanos),
        11: lambda: struct.pack("<bq", 11, value.epoch_ms),
        36: lambda: struct.pack("<bq", 36, value.ms),
        28: lambda: struct.pack("<bii", 28, value.type_id, value.ordinal),
    }
    return simple[code]()


def enc_object(type_name: str, fields: list[tuple[str, Any]]) -> tuple[bytes, BinaryObject]:
    """A complex object with a full footer and 4-byte offsets; header hash per facts §6."""
    data = bytearray()
    offsets = []
    for _, value in fields:
        offsets.append(24 + len(data))
        data += enc_key(value)
    ids = [hashing.field_id(name) for name, _ in fields]
    footer = b"".join(struct.pack("<iI", fid, off) for fid, off in zip(ids, offsets, strict=True))
    schema_offset = 24 + len(data)
    h = hashing.object_hash(bytes(data))
    tid = hashing.type_id(type_name)
    sid = hashing.schema_id(ids)
    header = struct.pack("<bbhiiiii", 103, 1, 0x03, tid, h, schema_offset + len(footer), sid,
                         schema_offset)
    obj = BinaryObject(tid, dict(fields), type_name, sid, h)
    return header + bytes(data) + footer, obj


def _decimals(rnd: random.Random, n: int) -> Iterator[decimal.Decimal]:
    fixed = ["0", "-0.00", "1E+3", "-1.5", "0.1", "123456789012345678901234567890.123",
             "-18446744073709551616", "18446744073709551615", "1e-40", "-7E+12"]
    yield from map(decimal.Decimal, fixed)
    for _ in range(n - len(fixed)):
        unscaled = rnd.choice([rnd.randint(-999, 999), rnd.randint(-(2**70), 2**70)])
        yield decimal.Decimal(unscaled).scaleb(-rnd.randint(-5, 20))


def _strings(rnd: random.Random, n: int, alphabet: str) -> Iterator[str]:
    for i in range(n):
        yield f"{i}-" + "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))


ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_"
NON_ASCII = "éüßжщЖ中文字€ñøαβγ"
ASTRAL = "😀𝄞🎉𐍈\U0002070e" + "aé"
ENUM_TYPES = (hashing.type_id("AffinityLiveColor"), hashing.type_id("AffinityLiveSize"))


def sample_keys(total: int = TOTAL_KEYS, seed: int = 2017) -> list[tuple[str, Any]]:
    """``total`` (kind, key) pairs of mixed types, deterministic for a seed."""
    rnd = random.Random(seed)
    big = 2**63
    specials = [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, 1.7976931348623157e308]
    floats = specials[:5] + [rnd.uniform(-1e30, 1e30) for _ in range(395)]
    kinds: list[tuple[str, Iterator[Any]]] = [
        ("int", (Typed(3, v) for v in [0, -1, 2**31 - 1, -(2**31)]
                 + [rnd.randint(-(2**31), 2**31 - 1) for _ in range(996)])),
        ("long", iter([0, -1, big - 1, -big, 2**32, -(2**32)]
                      + [rnd.randint(-big, big - 1) for _ in range(994)])),
        ("byte", (Typed(1, v) for v in range(-128, 128))),
        ("short", (Typed(2, rnd.randint(-(2**15), 2**15 - 1)) for _ in range(400))),
        ("float", (Typed(5, v) for v in floats)),
        ("double", iter(specials + [rnd.uniform(-1e300, 1e300) for _ in range(793)])),
        ("char", (Typed(7, chr(c)) for c in rnd.sample(range(0xD800), 300))),
        ("bool", iter([True, False])),
        ("str-ascii", _strings(rnd, 1000, ASCII)),
        ("str-non-ascii", _strings(rnd, 700, NON_ASCII)),
        ("str-astral", _strings(rnd, 500, ASTRAL)),
        ("uuid", (uuid.UUID(int=rnd.getrandbits(128)) for _ in range(700))),
        ("decimal", _decimals(rnd, 700)),
        ("timestamp", (Timestamp(rnd.randint(-(2**42), 2**42), rnd.randint(0, 999_999))
                       for _ in range(400))),
        ("date", (Date(rnd.randint(-(2**42), 2**42)) for _ in range(400))),
        ("time", (Time(rnd.randint(0, 86_399_999)) for _ in range(300))),
        ("enum", (EnumValue(ENUM_TYPES[i % 2], i // 2) for i in range(200))),
    ]
    keys = [(kind, key) for kind, it in kinds for key in it]
    keys += [("complex", i) for i in range(total - len(keys))]  # placeholders, built below
    assert len(keys) == total, len(keys)
    return keys


def complex_key(i: int, rnd: random.Random) -> tuple[bytes, BinaryObject]:
    """Keys of the configured type (routed by "grp": int or str) and of an unconfigured one."""
    if i % 4 == 3:
        return enc_object("AffinityLiveOther", [("a", i), ("b", f"other-{i}")])
    group: Any = Typed(3, rnd.randint(-(2**31), 2**31 - 1)) if i % 2 else f"grp-{i % 97}-ü😀"
    fields = [("id", Typed(3, i)), (KEYED_FIELD, group), ("note", "x" * (i % 7))]
    return enc_object(KEYED_TYPE, fields)


def encoded_keys(keys: list[tuple[str, Any]], seed: int = 7) -> list[tuple[str, Any, bytes]]:
    rnd = random.Random(seed)
    out = []
    for kind, key in keys:
        if kind == "complex":
            data, obj = complex_key(key, rnd)
            out.append((kind, obj, data))
        else:
            out.append((kind, key, enc_key(key)))
    return out


# -- cache set-up ---------------------------------------------------------------------------------


def _prefix(cid: int) -> bytes:
    return struct.pack("<ib", cid, 0)


def config_body(props: list[tuple[int, bytes]]) -> bytes:
    body = struct.pack("<h", len(props)) + b"".join(struct.pack("<h", c) + v for c, v in props)
    return struct.pack("<i", len(body)) + body


def create_thin_caches(node: RawNode) -> None:
    node.call(OpCode.CACHE_GET_OR_CREATE_WITH_NAME, enc_str(CACHES["default"]))
    keyed = [(0, enc_str(CACHES["keyed"])),
             (401, struct.pack("<i", 1) + enc_str(KEYED_TYPE) + enc_str(KEYED_FIELD))]
    node.call(OpCode.CACHE_GET_OR_CREATE_WITH_CONFIGURATION, config_body(keyed))
    compact = [(0, enc_str(CACHES["compact"])),
               (401, struct.pack("<i", 1) + enc_str(COMPACT_TYPE) + enc_str("region"))]
    node.call(OpCode.CACHE_GET_OR_CREATE_WITH_CONFIGURATION, config_body(compact))
    replicated = [(0, enc_str(CACHES["replicated"])), (1, struct.pack("<i", 1))]
    node.call(OpCode.CACHE_GET_OR_CREATE_WITH_CONFIGURATION, config_body(replicated))


_MAKER = "AffinityCacheMaker"
_MAKER_SOURCE = """
import java.util.List;
import org.apache.ignite.Ignite;
import org.apache.ignite.Ignition;
import org.apache.ignite.cache.affinity.rendezvous.RendezvousAffinityFunction;
import org.apache.ignite.configuration.CacheConfiguration;
import org.apache.ignite.configuration.IgniteConfiguration;
import org.apache.ignite.spi.communication.tcp.TcpCommunicationSpi;
import org.apache.ignite.spi.discovery.tcp.TcpDiscoverySpi;
import org.apache.ignite.spi.discovery.tcp.ipfinder.vm.TcpDiscoveryVmIpFinder;

/** Joins as a thick client and creates caches with a given partition count: name=parts... */
public final class AffinityCacheMaker {
    public static void main(String[] argv) {
        TcpCommunicationSpi comm = new TcpCommunicationSpi();
        comm.setLocalAddress("127.0.0.1");
        comm.setLocalPort(Integer.parseInt(argv[1]));
        comm.setLocalPortRange(0);
        IgniteConfiguration cfg = new IgniteConfiguration()
            .setIgniteInstanceName("affinity-cache-maker").setClientMode(true)
            .setLocalHost("127.0.0.1").setWorkDirectory(argv[2]).setMetricsLogFrequency(0)
            .setDiscoverySpi(new TcpDiscoverySpi().setLocalAddress("127.0.0.1")
                .setIpFinder(new TcpDiscoveryVmIpFinder().setAddresses(List.of(argv[0]))))
            .setCommunicationSpi(comm);
        try (Ignite ignite = Ignition.start(cfg)) {
            for (int i = 3; i < argv.length; i++) {
                String[] spec = argv[i].split("=");
                ignite.getOrCreateCache(new CacheConfiguration<Object, Object>(spec[0])
                    .setAffinity(new RendezvousAffinityFunction(false, Integer.parseInt(spec[1]))));
                System.out.println("CREATED " + spec[0]);
            }
        }
    }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_odd_partition_caches(discovery: str, workdir: Path, caches: dict[str, int]) -> None:
    """Create caches with non-default partition counts through a short-lived thick client.

    ``discovery`` is "127.0.0.1:first..last" of the cluster's discovery ports.
    """
    from broker.devcluster.maven import jdk_tool, prepare_runtime

    runtime = prepare_runtime()
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"{_MAKER}.java"
    source.write_text(_MAKER_SOURCE, encoding="utf-8")
    classpath = f"{runtime.lib_dir}/*"
    subprocess.run([jdk_tool("javac"), "-nowarn", "-cp", classpath, "-d", str(workdir),
                    str(source)], check=True, capture_output=True)
    specs = [f"{name}={parts}" for name, parts in caches.items()]
    result = subprocess.run(
        [jdk_tool("java"), f"@{runtime.jvm_argfile}", "-cp", f"{classpath}:{workdir}", _MAKER,
         discovery, str(_free_port()), str(workdir / "work"), *specs],
        capture_output=True, text=True, timeout=120, check=False,
    )
    created = result.stdout.count("CREATED ")
    assert result.returncode == 0 and created == len(caches), result.stdout + result.stderr


# -- looking keys up ------------------------------------------------------------------------------


def put_all(node: RawNode, cid: int, keys: Sequence[bytes], batch: int = 500) -> None:
    requests = []
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        body = bytearray(_prefix(cid) + struct.pack("<i", len(chunk)))
        for i, key in enumerate(chunk, start):
            body += key + struct.pack("<bi", 3, i)
        requests.append((OpCode.CACHE_PUT_ALL, bytes(body)))
    for event in node.call_many(requests):
        assert isinstance(event, Response), event


def holders(nodes: Sequence[RawNode], cid: int, keys: Sequence[bytes]) -> list[list[uuid.UUID]]:
    """For each key, the nodes whose LOCAL_PEEK (PRIMARY) finds it; all nodes in flight at once."""
    peek_tail = struct.pack("<ib", 1, 2)
    requests = [(OpCode.CACHE_LOCAL_PEEK, _prefix(cid) + key + peek_tail) for key in keys]
    answers: list[list[Response | ErrorResponse]] = [[] for _ in nodes]
    for start in range(0, len(requests), WINDOW):
        window = requests[start : start + WINDOW]
        ids = [node.send_many(window) for node in nodes]
        for i, node in enumerate(nodes):
            answers[i] += node.receive_many(ids[i])
    result = []
    for per_key in zip(*answers, strict=True):
        for event in per_key:
            assert isinstance(event, Response), event
        result.append([n.node_id for n, e in zip(nodes, per_key, strict=True) if e.body[0] != NULL])
    return result


def fetch_mapping(node: RawNode, names: Sequence[str], custom: bool = False
                  ) -> tuple[affinity.AffinityMapping, Response, bytes]:
    body = affinity.cache_partitions([cache_id(n) for n in names], node.features, custom)
    response = node.call(OpCode.CACHE_PARTITIONS, body)
    return affinity.parse_cache_partitions(response.body, node.features), response, body


def check_cache(nodes: Sequence[RawNode], cache: str, keyed: list[tuple[str, Any, bytes]]
                ) -> tuple[Counter[str], Counter[str], affinity.AffinityMapping, list[Any]]:
    """Put the keys, find their holders, compare: (checked per kind, mismatches per kind, ...)."""
    cid = cache_id(cache)
    put_all(nodes[0], cid, [k for _, _, k in keyed])
    found = holders(nodes, cid, [k for _, _, k in keyed])
    mapping, _, _ = fetch_mapping(nodes[1], [cache])
    checked: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    for (kind, key, data), where in zip(keyed, found, strict=True):
        assert len(where) == 1, f"{kind} {key!r} held by {where}"
        checked[kind] += 1
        by_value = mapping.node_for(cid, key)
        by_bytes = mapping.node_for_encoded(cid, data)
        if by_value != where[0] or by_bytes != where[0]:
            wrong[kind] += 1
    return checked, wrong, mapping, found


# -- the tests ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nodes(ignite_cluster3):
    conns = [RawNode(address) for address in ignite_cluster3.addresses]
    try:
        yield conns
    finally:
        for conn in conns:
            conn.close()


def _discovery(cluster: Any) -> str:
    from broker.devcluster.state import node_ports

    first = node_ports(cluster.base_port, 0).discovery
    return f"127.0.0.1:{first}..{first + len(cluster.addresses) - 1}"


@pytest.fixture(scope="module")
def caches(nodes, ignite_cluster3, tmp_path_factory):
    create_thin_caches(nodes[0])
    odd = {CACHES[kind]: parts for kind, parts in ODD_PARTITIONS.items()}
    make_odd_partition_caches(_discovery(ignite_cluster3), tmp_path_factory.mktemp("maker"), odd)
    return CACHES


@pytest.fixture(scope="module")
def keys():
    return encoded_keys(sample_keys())


def _report(cache: str, checked: Counter[str], wrong: Counter[str], seconds: float) -> str:
    rows = ", ".join(f"{kind} {n}" + (f" ({wrong[kind]} WRONG)" if wrong[kind] else "")
                     for kind, n in sorted(checked.items()))
    return f"{cache}: {sum(checked.values())} keys in {seconds:.1f} s: {rows}"


@pytest.mark.parametrize("kind", ["default", "parts1000"])
def test_every_key_is_routed_to_its_primary(nodes, caches, keys, kind) -> None:
    started = time.monotonic()
    checked, wrong, mapping, _ = check_cache(nodes, caches[kind], keys)
    print(_report(caches[kind], checked, wrong, time.monotonic() - started))
    expected = ODD_PARTITIONS.get(kind, 1024)
    assert mapping.caches[cache_id(caches[kind])].partition_count == expected
    assert sum(checked.values()) == TOTAL_KEYS
    assert not wrong, wrong


def test_small_odd_partition_count(nodes, caches, keys) -> None:
    sample = keys[::5]
    started = time.monotonic()
    checked, wrong, mapping, _ = check_cache(nodes, caches["parts37"], sample)
    print(_report(caches["parts37"], checked, wrong, time.monotonic() - started))
    assert mapping.caches[cache_id(caches["parts37"])].partition_count == 37
    assert not wrong, wrong


def test_complex_keys_follow_the_affinity_field(nodes, caches, keys) -> None:
    complex_keys = [k for k in keys if k[0] == "complex"]
    rnd = random.Random(11)
    complex_keys += [("complex", obj, data) for data, obj in
                     (complex_key(i, rnd) for i in range(1000, 3000))]
    started = time.monotonic()
    checked, wrong, mapping, found = check_cache(nodes, caches["keyed"], complex_keys)
    print(_report(caches["keyed"], checked, wrong, time.monotonic() - started))
    cache = mapping.caches[cache_id(caches["keyed"])]
    assert dict(cache.key_configs) == {hashing.type_id(KEYED_TYPE): hashing.field_id(KEYED_FIELD)}
    assert not wrong, wrong
    # Control: routing the configured keys by their own header hash would be wrong often.
    configured = [(obj, where) for (_, obj, _), where in zip(complex_keys, found, strict=True)
                  if obj.type_name == KEYED_TYPE]
    by_header = sum(cache.partitions[cache.partition_of(obj.hash_code)] != where[0]
                    for obj, where in configured)
    assert by_header > len(configured) // 3


def test_keys_written_by_the_codec(nodes, caches) -> None:
    """Keys from protocol.binary (compact footers, metadata registered): field typed as INT."""
    from protocol.binary import encode_value
    from protocol.binary.metadata import binary_type_put, object_type
    from protocol.binary.registry import CodecContext, Registry

    ctx = CodecContext(Registry())
    bt = object_type(COMPACT_TYPE, [("id", 3), ("region", 3), ("name", 9)])
    nodes[0].call(OpCode.BINARY_TYPE_PUT, binary_type_put(bt))
    ctx.registry.add(bt)
    rnd = random.Random(3)
    objs = [BinaryObject(bt.type_id, {"id": i, "region": rnd.randint(-(2**31), 2**31 - 1),
                                      "name": f"n{i}"}, COMPACT_TYPE) for i in range(2000)]
    keyed = [("codec", obj, encode_value(obj, ctx=ctx)) for obj in objs]
    assert not ctx.take_pending() and keyed[0][2][2] & 0x20  # registered; compact footer
    cid = cache_id(caches["compact"])
    put_all(nodes[0], cid, [data for _, _, data in keyed])
    found = holders(nodes, cid, [data for _, _, data in keyed])
    mapping = fetch_mapping(nodes[1], [caches["compact"]])[0]
    wrong = sum(mapping.node_for(cid, obj, ctx=ctx) != where[0]
                or mapping.node_for_encoded(cid, data, ctx) != where[0]
                for (_, obj, data), where in zip(keyed, found, strict=True))
    print(f"{caches['compact']}: {len(keyed)} codec-written keys, {wrong} wrong")
    assert wrong == 0
    # No control here: with 1024 partitions an int32 lands on the same partition whether
    # hashed as Integer or Long (~h folds to the same low bits); test_affinity.py checks
    # the typing with 1000 partitions.


def test_all_nodes_give_the_same_mapping(nodes, caches) -> None:
    names = list(caches.values())
    mappings = [fetch_mapping(node, names)[0] for node in nodes]
    assert mappings[0] == mappings[1] == mappings[2]
    owners = set(mappings[0].caches[cache_id(caches["default"])].partitions)
    assert owners == {node.node_id for node in nodes}


def test_replicated_cache_is_not_routed(nodes, caches) -> None:
    cid = cache_id(caches["replicated"])
    mapping = fetch_mapping(nodes[0], [caches["replicated"]])[0]
    assert mapping.caches[cid].applicable is False
    assert mapping.node_for(cid, 1) is None


def test_custom_mappings_request(nodes, caches) -> None:
    names = [caches["default"], caches["parts1000"], caches["replicated"]]
    plain = fetch_mapping(nodes[2], names)[0]
    custom = fetch_mapping(nodes[2], names, custom=True)[0]
    assert custom == plain  # all Rendezvous: nothing extra to send
    assert all(c.default_affinity for c in custom.caches.values() if c.applicable)


def test_without_feature_13_the_flag_is_absent(ignite_cluster3, caches) -> None:
    node = RawNode(ignite_cluster3.addresses[0], DEFAULT_FEATURES)
    try:
        assert Feature.ALL_AFFINITY_MAPPINGS not in node.features
        mapping, _, body = fetch_mapping(node, [caches["default"]])
        assert body[:4] == struct.pack("<i", 1)
        assert mapping.caches[cache_id(caches["default"])].partition_count == 1024
    finally:
        node.close()


def test_a_new_cache_makes_the_mapping_stale(nodes, caches) -> None:
    mapping = fetch_mapping(nodes[0], [caches["default"]])[0]
    name = f"aff-live-stale-{uuid.uuid4().hex[:8]}"
    created = nodes[0].call(OpCode.CACHE_CREATE_WITH_NAME, enc_str(name))
    assert affinity.is_newer(created.affinity_version, mapping.version)
    for node in nodes[1:]:  # the others tell their connection once their exchange is done
        deadline = time.monotonic() + 20
        while (seen := node.call(OpCode.CACHE_GET_NAMES).affinity_version) is None:
            assert time.monotonic() < deadline, "no topology change reported"
            time.sleep(0.02)
        assert affinity.is_newer(seen, mapping.version)
    fresh = fetch_mapping(nodes[0], [caches["default"]])[0]
    assert not affinity.is_newer(created.affinity_version, fresh.version)
    cid = cache_id(caches["default"])
    assert fresh.caches[cid] == mapping.caches[cid]  # a new cache moves no partition of this one
    nodes[0].call(OpCode.CACHE_DESTROY, struct.pack("<i", cache_id(name)))


# -- vector capture (python tests/integration/test_affinity_live.py --base-port B --out F) --------


def _typed_json(value: Any) -> dict[str, Any]:
    if type(value) is Typed:
        inner = value.value
        if isinstance(inner, float):
            inner = repr(inner)
        return {"type": value.type_code, "value": inner}
    if isinstance(value, bool | int | str):
        return {"type": type(value).__name__, "value": value}
    if isinstance(value, float):
        return {"type": "float", "value": repr(value)}
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return {"type": type(value).__name__, "value": str(value)}
    if isinstance(value, Timestamp):
        return {"type": "Timestamp", "value": [value.epoch_ms, value.nanos]}
    if isinstance(value, Date):
        return {"type": "Date", "value": value.epoch_ms}
    if isinstance(value, Time):
        return {"type": "Time", "value": value.ms}
    if isinstance(value, EnumValue):
        return {"type": "EnumValue", "value": [value.type_id, value.ordinal]}
    if isinstance(value, BinaryObject):
        fields = [[name, _typed_json(v)] for name, v in value.fields.items()]
        return {"type": "BinaryObject", "type_name": value.type_name, "type_id": value.type_id,
                "hash_code": value.hash_code, "fields": fields}
    raise TypeError(value)


def _cache_json(c: affinity.CacheMapping, names: list[str]) -> dict[str, Any]:
    return {"name": next((n for n in names if cache_id(n) == c.cache_id), None),
            "applicable": c.applicable, "default_affinity": c.default_affinity,
            "partition_count": c.partition_count,
            "key_configs": {str(t): f for t, f in c.key_configs.items()},
            "owners": dict(Counter(str(u) for u in c.partitions))}


def capture(base_port: int, out: Path, per_kind: int = 8) -> None:
    from broker.devcluster.state import node_ports

    addresses = [("127.0.0.1", base_port + i) for i in range(3)]
    nodes = [RawNode(a) for a in addresses]
    create_thin_caches(nodes[0])
    first = node_ports(base_port, 0).discovery
    odd = {CACHES[kind]: parts for kind, parts in ODD_PARTITIONS.items()}
    make_odd_partition_caches(f"127.0.0.1:{first}..{first + 2}", Path("/tmp/aff-capture"), odd)
    keys = encoded_keys(sample_keys())
    picked: dict[str, list[tuple[str, Any, bytes]]] = {}
    for kind, key, data in keys:
        bucket = picked.setdefault(kind, [])
        if len(bucket) < per_kind or (kind == "complex" and len(bucket) < 4 * per_kind):
            bucket.append((kind, key, data))
    sample = [k for bucket in picked.values() for k in bucket]
    plain = RawNode(addresses[0], DEFAULT_FEATURES)
    entries = []
    names = list(CACHES.values())
    runs = (("feature-13", nodes[0], False), ("feature-13-custom", nodes[1], True),
            ("no-features", plain, False))
    for label, node, custom in runs:
        mapping, response, body = fetch_mapping(node, names, custom)
        entries.append({
            "name": label, "features": sorted(node.features), "custom_mappings": custom,
            "cache_ids": [cache_id(n) for n in names], "request_body_hex": body.hex(),
            "response_body_hex": bytes(response.body).hex(), "version": list(mapping.version),
            "caches": {str(cid): _cache_json(c, names) for cid, c in mapping.caches.items()},
        })
    probes = []
    for kind in ("default", "parts1000", "parts37", "keyed"):
        cache = CACHES[kind]
        _, _, _, found = check_cache(nodes, cache, sample)
        for (k, key, data), where in zip(sample, found, strict=True):
            probes.append({"cache": cache, "kind": k, "key": _typed_json(key),
                           "key_hex": data.hex(), "holder": str(where[0])})
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    doc = {
        "source": f"captured from a 3-node Ignite 2.17.0 dev cluster (base port {base_port}) by "
                  f"tests/integration/test_affinity_live.py at {stamp}; holders found with "
                  "CACHE_LOCAL_PEEK on each node (no backups)",
        "nodes": [str(n.node_id) for n in nodes],
        "affinity": entries,
        "probes": probes,
    }
    out.write_text(_dump(doc), encoding="utf-8")
    print(f"wrote {out}: {len(entries)} answers, {len(probes)} probes")


def _dump(doc: dict[str, Any]) -> str:
    """JSON with one line per probe (the file stays readable and diffable)."""
    head = {k: v for k, v in doc.items() if k != "probes"}
    text = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    probes = ",\n  ".join(json.dumps(p, ensure_ascii=False) for p in doc["probes"])
    return f'{text},\n "probes": [\n  {probes}\n ]\n}}\n'


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    capture(args.base_port, args.out)
