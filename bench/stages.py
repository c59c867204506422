"""The stage-decomposition rung: where the time of one sequential libclient get goes, stage by
stage, over unix:// and ZeroMQ ipc://.

A broker of its own (started with ``IGNITE_BROKER_STAGES``, broker/stages.py) stamps each
request as it is read, decoded, written to the node, answered by the node, encoded and written
back; a child process drives ``Client.get`` with the stub's channel wrapped to stamp the call,
the send, the reply received and the return.  All stamps are ``time.perf_counter_ns()``
(CLOCK_MONOTONIC, one clock for every process on the host); the two sides are joined by
request id.  Off (a broker started without the variable), none of this is on the path.

    .venv/bin/python -m bench.stages --node 127.0.0.1:12600      # a node holding bench-kv
    .venv/bin/python -m bench.stages                              # its own 1-node cluster
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.workloads import KV_CACHE, VALUE, Lib, Target  # noqa: E402

KEY = 1
_WARMUP = 200

#: (stage, from stamp, to stamp, what it covers), in path order.
STAGES = [
    ("stub_encode", "call", "send", "stub: Client.get to the socket send (envelope packed)"),
    ("to_broker", "send", "read", "IPC to the broker and its wake-up"),
    ("decode", "read", "decoded", "broker: framing and envelope unpack"),
    ("to_node", "decoded", "node_write", "broker: dispatch, handler, encode, route, node write"),
    ("node", "node_write", "node_read", "the node's answer over TCP (Ignite itself)"),
    ("answer", "node_read", "encoded", "broker: response parse, settle, reply pack"),
    ("reply_write", "encoded", "written", "broker: reply framed and handed to the socket"),
    ("to_stub", "written", "received", "IPC to the stub and its wake-up, reply matched"),
    ("stub_return", "received", "done", "stub: reply to Client.get's return"),
]


def stamp_channel(cls: type, marks: dict[str, int], sent: list[bytes]) -> None:
    """Wraps a stub channel class's send and wait_reply: the time of the last send and
    receive in ``marks``, the frames sent in ``sent``; whatever else the stub passes goes
    through as it is."""
    send, wait = cls.send, cls.wait_reply  # type: ignore[attr-defined]
    clock = time.perf_counter_ns

    def timed_send(self: Any, frame: bytes, *options: Any, **named: Any) -> bool:
        marks["send"] = clock()
        sent.append(frame)
        return send(self, frame, *options, **named)  # type: ignore[no-any-return]

    def timed_wait(self: Any, *options: Any, **named: Any) -> Any:
        reply = wait(self, *options, **named)
        marks["received"] = clock()
        return reply

    cls.send, cls.wait_reply = timed_send, timed_wait  # type: ignore[attr-defined]


def _drive(endpoints: list[str], n: int, rounds: int, conn: Any) -> None:
    """Child process: sequential gets per endpoint in interleaved slices, stub stamps sent
    back as {endpoint: [(request_id, call, send, received, done)]}."""
    from libclient import transport
    from protocol.ipc import unpack_request

    clock = time.perf_counter_ns
    marks: dict[str, int] = {}
    sent: list[bytes] = []
    stamp_channel(transport.StreamChannel, marks, sent)
    stamp_channel(transport.ZmqChannel, marks, sent)
    lib = Lib("libclient")
    caches = {}
    for endpoint in endpoints:
        cache = lib.connect(Target((), endpoint)).get_cache(KV_CACHE)
        if cache.get(KEY) != VALUE:
            raise RuntimeError("stages: bench-kv is not preloaded")
        for _ in range(_WARMUP):
            cache.get(KEY)
        caches[endpoint] = cache
    out: dict[str, list[tuple[int, ...]]] = {e: [] for e in endpoints}
    for _ in range(rounds):
        for endpoint, cache in caches.items():
            for _ in range(max(1, n // rounds)):
                sent.clear()
                call = clock()
                cache.get(KEY)
                done = clock()
                request_id = unpack_request(sent[-1]).request_id
                out[endpoint].append((request_id, call, marks["send"], marks["received"], done))
    conn.send(out)
    conn.close()


def _broker_records(path: Path) -> dict[int, dict[str, int]]:
    """request id -> stage -> ns, from the broker's stage file."""
    records: dict[int, dict[str, int]] = {}
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        rid, *stamps = line.split()
        record: dict[str, int] = {}
        for stamp in stamps:
            stage, ns = stamp.split("=")
            record.setdefault(stage, int(ns))  # the first of a stage (one node write)
        records[int(rid)] = record
    return records


def decompose(stub: list[tuple[int, ...]],
              broker: dict[int, dict[str, int]]) -> dict[str, Any]:
    """Per stage p50 (us) over the requests both sides stamped, and the whole get's p50."""
    deltas: dict[str, list[float]] = {name: [] for name, *_ in STAGES}
    totals = []
    for request_id, call, send, received, done in stub:
        record = broker.get(request_id)
        if record is None:
            continue
        stamps = {**record, "call": call, "send": send, "received": received, "done": done}
        if any(s not in stamps for _, a, b, _ in STAGES for s in (a, b)):
            continue
        for name, a, b, _ in STAGES:
            deltas[name].append((stamps[b] - stamps[a]) / 1000)
        totals.append((done - call) / 1000)
    stages = [{"stage": name, "covers": covers,
               "p50_us": statistics.median(deltas[name]) if deltas[name] else None}
              for name, _, _, covers in STAGES]
    return {"stages": stages, "n": len(totals),
            "get_p50_us": statistics.median(totals) if totals else None}


def stage_rung(address: tuple[str, int], ctx: Any, n: int = 2000,
               workdir: str | None = None) -> dict[str, Any]:
    """Start a stamping broker on the cluster at ``address``, drive sequential gets over both
    transports, and decompose them: {"unix": {...}, "ipc": {...}}."""
    from broker.devcluster.brokerproc import BrokerProcess
    from broker.stages import ENV

    work = Path(workdir or tempfile.mkdtemp(prefix="ignite-broker-stages-"))
    path = work / "stages.txt"
    broker = BrokerProcess([address], workdir=work, env={ENV: str(path)})
    with broker.start():
        ours, theirs = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_drive, args=(
            [broker.stream_endpoint, broker.endpoint], n, 5, theirs))
        child.start()
        theirs.close()
        stub = ours.recv()
        child.join()
    records = _broker_records(path)
    return {"unix": decompose(stub[broker.stream_endpoint], records),
            "ipc": decompose(stub[broker.endpoint], records)}


def render(result: dict[str, Any]) -> list[str]:
    """Markdown table: one row per stage, a column per transport."""
    unix, ipc = result["unix"], result["ipc"]
    lines = ["| stage | what it covers | unix:// p50 us | ipc:// p50 us |",
             "|---|---|---:|---:|"]
    for a, b in zip(unix["stages"], ipc["stages"], strict=True):
        lines.append(f"| {a['stage']} | {a['covers']} | {_us(a['p50_us'])} | "
                     f"{_us(b['p50_us'])} |")
    total_u = sum(s["p50_us"] or 0 for s in unix["stages"])
    total_i = sum(s["p50_us"] or 0 for s in ipc["stages"])
    lines.append(f"| sum of stage p50s | | {total_u:.1f} | {total_i:.1f} |")
    lines.append(f"| whole get p50 (n = {unix['n']} / {ipc['n']}) | | "
                 f"{_us(unix['get_p50_us'])} | {_us(ipc['get_p50_us'])} |")
    return lines


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", help="host:port of a node holding bench-kv")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--base-port", type=int, default=12040)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("forkserver")
    if args.node:
        host, port = args.node.rsplit(":", 1)
        print("\n".join(render(stage_rung((host, int(port)), ctx, args.n))))
        return 0
    from bench.run import Settings, environment

    settings = Settings(mode="floor", plan={1: {}}, duration=0, reps=0, connections_per_node=1,
                        base_port=args.base_port, profile_s=0, idle_stubs=0, floor_n=args.n,
                        import_runs=0)
    with environment(1, args.base_port, settings) as env:
        print("\n".join(render(stage_rung(env.target.addresses[0], ctx, args.n))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
