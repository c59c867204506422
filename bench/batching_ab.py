"""Automatic batching A/B (limits.batch_requests): one real cluster, two brokers on it (batching
on and off) and pyignite beside them, in the same run.  Per cell, every repetition runs the
three in a rotating order; medians of throughput, p50, broker CPU per op and JVM CPU per op,
and each broker's ratio to pyignite from the same run.

    .venv/bin/python -m bench.batching_ab --base-port 12700 --nodes 3 --workers 32 --workloads mix
    .venv/bin/python -m bench.batching_ab --base-port 12700 --nodes 1 --workers 8 \
        --workloads get,put

It prints a markdown table (and appends it to --out when given).  The run's load average is
printed with it: on a shared machine only the same-run ratios mean much."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import floor, report  # noqa: E402
from bench.run import (  # noqa: E402
    Env,
    WorkerPool,
    _setup,
    cpu_seconds,
    measure,
    sleep_until,
    total_cpu,
    tree_state,
)
from bench.workloads import Target, forkserver_context  # noqa: E402
from broker.devcluster import DevCluster  # noqa: E402
from broker.devcluster.brokerproc import BrokerProcess  # noqa: E402

RUNNERS = ("pyignite", "batching on", "batching off")


@contextlib.contextmanager
def _broker(cluster: DevCluster, batching: bool, loop: str) -> Iterator[BrokerProcess]:
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as workdir:
        broker = BrokerProcess(cluster.addresses, workdir=workdir, settings={
            "log.level": "warning", "broker.event_loop": loop,
            "limits.batch_requests": batching})
        try:
            broker.start(wait_nodes=cluster.nodes)
            yield broker
        finally:
            broker.stop()


def _env(nodes: int, cluster: DevCluster, broker: BrokerProcess, transport: str) -> Env:
    endpoint = broker.stream_endpoint if transport == "stream" else broker.endpoint
    return Env(nodes, cluster, broker, Target(tuple(cluster.addresses), endpoint),
               {port for _, port in cluster.addresses})


def _cell(envs: dict[str, Env], ctx: Any, workers: int, workload: str,
          args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in RUNNERS}
    with contextlib.ExitStack() as stack:
        pools = {name: stack.enter_context(WorkerPool(
            ctx, "pyignite" if name == "pyignite" else "libclient", envs[name].target, workers))
            for name in RUNNERS}
        for rep in range(args.reps):
            order = RUNNERS[rep % 3:] + RUNNERS[:rep % 3]
            for name in order:
                row = measure(envs[name], pools[name], workload, args.duration)
                rows[name].append(row)
                print(f"   [{envs[name].nodes}n W={workers}] {workload:5} {name:13} rep "
                      f"{rep + 1}: {row['ops_per_s']:>9,.0f} ops/s p50 {row['p50_us']:7.0f} µs "
                      f"broker {row['broker_cpu_us_per_op']:5.1f} µs/op "
                      f"JVMs {row['cluster_cpu_us_per_op']:6.1f} µs/op", flush=True)
    return rows


def _saturate(env: Env, ctx: Any, seconds: float) -> dict[str, Any]:
    """One broker as the bottleneck: 8 unix:// connections x 16 pipelined raw cache_gets of
    distinct keys; the broker's and the JVMs' CPU over the counted window."""
    start_at = time.monotonic() + 1.0  # the first second warms up, uncounted
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=floor.pipelined_load, daemon=True,  # distinct keys
                       args=(env.broker.stream_endpoint, 8, 16, start_at, seconds, child))
    proc.start()
    try:
        sleep_until(start_at)
        broker0, jvm0 = cpu_seconds(env.broker_pid), total_cpu(env.jvm_pids)
        sleep_until(start_at + seconds)
        broker1, jvm1 = cpu_seconds(env.broker_pid), total_cpu(env.jvm_pids)
        done, errors = parent.recv() if parent.poll(60) else (0, 0)
    finally:
        proc.join(10)
    ops = max(1, done)
    return {"ops_per_s": done / seconds, "errors": errors,
            "broker_cpu_us_per_op": (broker1 - broker0) * 1e6 / ops,
            "cluster_cpu_us_per_op": (jvm1 - jvm0) * 1e6 / ops}


def _saturation(envs: dict[str, Env], ctx: Any, args: argparse.Namespace) -> list[str]:
    """Each broker at saturation, alternating which goes first."""
    rows: dict[str, list[dict[str, Any]]] = {"batching on": [], "batching off": []}
    for rep in range(args.reps):
        for name in (list(rows) if rep % 2 == 0 else list(rows)[::-1]):
            row = _saturate(envs[name], ctx, args.duration)
            rows[name].append(row)
            print(f"   saturation {name:13} rep {rep + 1}: {row['ops_per_s']:>9,.0f} ops/s "
                  f"broker {row['broker_cpu_us_per_op']:5.1f} µs/op JVMs "
                  f"{row['cluster_cpu_us_per_op']:6.1f} µs/op errors {row['errors']}", flush=True)
    lines = ["| broker at saturation (8 x 16 pipelined raw cache_get, distinct keys) "
             "| ops/s (median) [min-max] | broker CPU µs/op | JVM CPU µs/op |",
             "|---|---|---|---|"]
    for name, mine in rows.items():
        ops = [row["ops_per_s"] for row in mine]
        lines.append(f"| {name} | {statistics.median(ops):,.0f} [{min(ops):,.0f}-"
                     f"{max(ops):,.0f}] | {_median(mine, 'broker_cpu_us_per_op'):.1f} "
                     f"| {_median(mine, 'cluster_cpu_us_per_op'):.1f} |")
    return lines


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def _table(cells: list[tuple[int, int, str, dict[str, list[dict[str, Any]]]]]) -> list[str]:
    lines = ["| nodes | W | workload | runner | ops/s (median) [min-max] | x pyignite "
             "| p50 µs | broker CPU µs/op | JVM CPU µs/op |",
             "|---|---|---|---|---|---|---|---|---|"]
    for nodes, workers, workload, rows in cells:
        base = _median(rows["pyignite"], "ops_per_s")
        for name in RUNNERS:
            mine = rows[name]
            ops = [row["ops_per_s"] for row in mine]
            broker = ("-" if name == "pyignite"
                      else f"{_median(mine, 'broker_cpu_us_per_op'):.1f}")
            lines.append(
                f"| {nodes} | {workers} | {workload} | {name} | {statistics.median(ops):,.0f} "
                f"[{min(ops):,.0f}-{max(ops):,.0f}] | {statistics.median(ops) / base:.2f} "
                f"| {_median(mine, 'p50_us'):.0f} | {broker} "
                f"| {_median(mine, 'cluster_cpu_us_per_op'):.1f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--workers", default="32", help="comma list of worker counts")
    parser.add_argument("--workloads", default="mix", help="comma list (get, put, mix, ...)")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--base-port", type=int, default=12000)
    parser.add_argument("--transport", choices=("stream", "zmq"), default="stream")
    parser.add_argument("--event-loop", default="uvloop")
    parser.add_argument("--out", type=Path, help="append the table to this markdown file")
    parser.add_argument("--saturation", action="store_true",
                        help="also each broker at saturation (pipelined raw cache_get)")
    args = parser.parse_args(argv)
    workloads = args.workloads.split(",")
    load_before = report.loadavg()
    ctx = forkserver_context()
    cells = []
    with DevCluster(nodes=args.nodes, base_port=args.base_port) as cluster, \
            _broker(cluster, True, args.event_loop) as on, \
            _broker(cluster, False, args.event_loop) as off:
        envs = {"batching on": _env(args.nodes, cluster, on, args.transport),
                "batching off": _env(args.nodes, cluster, off, args.transport)}
        envs["pyignite"] = envs["batching on"]
        _setup(envs["batching on"].target, set(workloads))
        for workers in (int(w) for w in args.workers.split(",") if w):
            for workload in workloads:
                cells.append((args.nodes, workers, workload,
                              _cell(envs, ctx, workers, workload, args)))
        saturation = _saturation(envs, ctx, args) if args.saturation else []
        stats = on.admin("show stats")
    lines = [f"### {args.nodes} node(s), W={args.workers}, {args.workloads}, "
             f"transport {args.transport}, {args.reps} reps x {args.duration:g}s",
             "", f"code: {tree_state()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"{report.machine_info()['cpu']}, {report.machine_info()['nproc']} CPUs; "
             f"load average before {load_before}, after {report.loadavg()}; batching-on "
             f"broker: batched_requests {stats.get('batched_requests')}, batches "
             f"{stats.get('batches')}, unbatched_requests {stats.get('unbatched_requests')}",
             "", *(_table(cells) if cells else []), "", *saturation, ""]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        with args.out.open("a") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
