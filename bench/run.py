"""The side-by-side benchmark: pyignite direct vs libclient through the broker, on the same
real Ignite cluster, in the same run.

    .venv/bin/python -m bench.run            # default plan, ~7.5 minutes
    .venv/bin/python -m bench.run --quick    # ~2 minutes
    .venv/bin/python -m bench.run --full     # every workload x W in {1, 8, 32, 128}, 1 and 3 nodes

For each cluster size it starts a dev cluster (real Ignite JVMs, base ports 12000+), the broker
and W worker processes per library, and runs every workload of the plan several times,
alternating which library goes first.  Each run is a timed window that all workers of the run
start together; it records ops/s, latency percentiles, the connections the cluster sees,
CPU per op of the broker, of the workers and of the cluster's JVMs, and the broker's RSS.
Then the floor (bench/floor.py), the broker's RSS with 1,000 idle stubs, profiles (py-spy),
the stub import cost (bench/stub_import.py) and the codec micro-benchmark
(bench/codec_bench.py).  Everything lands in bench/results/ (see bench/report.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/run.py` as well as `python -m bench.run`
    sys.path.insert(0, str(ROOT))

from bench import floor, report, stages  # noqa: E402
from bench.workloads import (  # noqa: E402
    LIBS,
    WORKLOADS,
    Lib,
    Sample,
    Target,
    forkserver_context,
    setup_cluster,
    worker_main,
)
from broker.devcluster import DevCluster  # noqa: E402
from broker.devcluster.brokerproc import BrokerProcess  # noqa: E402
from broker.devcluster.netstat import established_connections  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ALL_WORKERS = (1, 8, 32, 128)
KV_WORKLOADS = ["get", "put", "mix", "get_all", "put_all", "obj_get", "obj_put", "tx"]
ALL_WORKLOADS = [*KV_WORKLOADS[:-1], "sql", "tx"]  # the list; get_hot on demand
CONNECT_TIMEOUT = 120.0
RESULT_TIMEOUT = 600.0  # one pyignite SQL stream can take ~15 s; 8 of them on 2 cores more

Plan = dict[int, dict[int, list[str]]]  # nodes -> workers -> workloads

PLANS: dict[str, Plan] = {
    "quick": {1: {1: ALL_WORKLOADS}, 3: {32: ["mix"]}},
    "default": {1: {1: ALL_WORKLOADS, 8: KV_WORKLOADS}, 3: {1: ["get"], 32: ["mix", "get"]}},
    "full": {n: {w: ALL_WORKLOADS if w <= 8 else [*KV_WORKLOADS, "get_hot"]
                 for w in ALL_WORKERS} for n in (1, 3)},
}


@dataclass
class Settings:
    mode: str
    plan: Plan
    duration: float
    reps: int
    connections_per_node: int
    base_port: int
    profile_s: float
    idle_stubs: int
    floor_n: int
    import_runs: int
    prefix: str = "results"
    transport: str = "stream"  # how libclient workers reach the broker: "stream" or "zmq"
    event_loop: str = "auto"  # the broker's broker.event_loop
    coalesce_reads: bool = False
    profile: bool = True
    saturation: bool = True
    floor: bool = True
    idle: bool = True
    codec: bool = True
    stub_import: bool = True


@dataclass
class Results:
    settings: dict[str, Any]
    machine: dict[str, Any]
    samples: list[dict[str, Any]] = field(default_factory=list)
    floors: list[dict[str, Any]] = field(default_factory=list)
    stages: dict[str, Any] | None = None  # bench/stages.py: one get, stage by stage
    idle: dict[str, Any] | None = None
    idle_zmq: dict[str, Any] | None = None
    profiles: dict[str, Any] = field(default_factory=dict)
    saturation: dict[str, Any] | None = None
    saturation_zmq: dict[str, Any] | None = None
    stub_import: dict[str, Any] | None = None
    codec: dict[str, Any] | None = None
    coalescing: str = ""
    broker_stats: dict[str, Any] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)
    finished: str = ""


class BenchError(RuntimeError):
    pass


# -- command line --------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="~2-3 minutes: fewer cells, shorter")
    mode.add_argument("--full", action="store_true",
                      help="every workload at W in 1,8,32,128 on 1 and 3 nodes (long)")
    parser.add_argument("--nodes", type=_int_list, help="cluster sizes, e.g. 1,3")
    parser.add_argument("--workers", type=_int_list, help="worker counts, e.g. 1,8,32,128")
    parser.add_argument("--workloads", help=f"comma list of {','.join(WORKLOADS)}")
    parser.add_argument("--duration", type=float, help="seconds per timed window")
    parser.add_argument("--reps", type=int, help="repetitions per cell (medians are quoted)")
    parser.add_argument("--connections-per-node", type=int, default=1)
    parser.add_argument("--base-port", type=int, default=12000,
                        help="first cluster's base port; the next one is +10")
    parser.add_argument("--profile-seconds", type=float)
    parser.add_argument("--idle-stubs", type=int, default=1000)
    parser.add_argument("--transport", choices=("stream", "zmq"), default="stream",
                        help="how libclient workers reach the broker: unix:// (default) or "
                             "ZeroMQ ipc://")
    parser.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                        help="the broker's broker.event_loop setting")
    parser.add_argument("--coalesce-reads", action="store_true",
                        help="run the broker with limits.coalesce_reads on (try --workloads "
                             "get_hot)")
    for name in ("profile", "saturation", "floor", "idle", "codec", "stub-import"):
        parser.add_argument(f"--skip-{name}", action="store_true")
    args = parser.parse_args(argv)
    return _settings(args)


def _settings(args: argparse.Namespace) -> Settings:
    name = "quick" if args.quick else "full" if args.full else "default"
    plan = _custom_plan(PLANS[name], args)
    quick = name == "quick"
    if plan is not PLANS[name]:
        name = f"{name}-custom"  # its own results files: a partial run never replaces a full one
    settings = Settings(
        mode=name, plan=plan,
        duration=args.duration or (1.0 if quick else 5.0 if name == "full" else 2.0),
        reps=args.reps or (2 if quick else 5 if name == "full" else 3),
        connections_per_node=args.connections_per_node, base_port=args.base_port,
        profile_s=args.profile_seconds or (4.0 if quick else 8.0),
        idle_stubs=args.idle_stubs, floor_n=500 if quick else 2000,
        import_runs=3 if quick else 10,
        prefix=f"results-{name}" if name != "default" else "results",
        coalesce_reads=args.coalesce_reads, transport=args.transport,
        event_loop=_resolve_loop(args.event_loop),
        profile=not args.skip_profile, saturation=not args.skip_saturation,
        floor=not args.skip_floor, idle=not args.skip_idle,
        codec=not args.skip_codec, stub_import=not args.skip_stub_import)
    return settings


def _resolve_loop(choice: str) -> str:
    """What "auto" means here (the broker runs with this venv's packages)."""
    if choice != "auto":
        return choice
    import importlib.util

    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def _custom_plan(plan: Plan, args: argparse.Namespace) -> Plan:
    """--nodes/--workers/--workloads replace the plan's axes (their cross product)."""
    if not (args.nodes or args.workers or args.workloads):
        return plan
    nodes = args.nodes or sorted(plan)
    workers = args.workers or sorted({w for cells in plan.values() for w in cells})
    workloads = args.workloads.split(",") if args.workloads else ALL_WORKLOADS
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workloads {unknown}; known: {', '.join(WORKLOADS)}")
    return {n: {w: list(workloads) for w in workers} for n in nodes}


# -- /proc probes ---------------------------------------------------------------------------------

_CLK_TCK = 100


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def total_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def zmq_threads_cpu(pid: int) -> float:
    """CPU seconds of a process's libzmq background threads (ZMQbg/IO/n, ZMQbg/Reaper)."""
    total = 0.0
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/stat", "rb") as fh:
                head, _, rest = fh.read().rpartition(b")")
                if b"(ZMQbg" in head:
                    fields = rest.split()
                    total += (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return total


def cpu_snapshot(env: Env, pool: WorkerPool) -> dict[str, float]:
    """CPU seconds so far of the broker (and its libzmq threads), the workers and the JVMs."""
    return {"broker": cpu_seconds(env.broker_pid), "broker_zmq": zmq_threads_cpu(env.broker_pid),
            "client": total_cpu(pool.pids),
            "client_zmq": sum(zmq_threads_cpu(pid) for pid in pool.pids),
            "cluster": total_cpu(env.jvm_pids)}


def sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# -- worker pools ---------------------------------------------------------------------------------


class WorkerPool:
    """W worker processes of one library, each with its own connected client."""

    def __init__(self, ctx: Any, lib: str, target: Target, size: int) -> None:
        self.lib = lib
        self.size = size
        self._ctx = ctx
        self._target = target
        self._procs: list[Any] = []
        self._pipes: list[Any] = []
        self.pids: list[int] = []

    def __enter__(self) -> WorkerPool:
        try:
            for index in range(self.size):
                parent, child = self._ctx.Pipe()
                proc = self._ctx.Process(target=worker_main, daemon=True,
                                         args=(child, self.lib, self._target, index))
                proc.start()
                child.close()
                self._procs.append(proc)
                self._pipes.append(parent)
            self.pids = [pid for _, pid in self._collect("connected", CONNECT_TIMEOUT)]
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
        deadline = time.monotonic() + 10
        for proc in self._procs:
            proc.join(max(0.1, deadline - time.monotonic()))
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for pipe in self._pipes:
            pipe.close()
        self._procs, self._pipes = [], []

    def prepare(self, workload: str) -> None:
        self._broadcast(("prepare", workload))
        self._collect("ready", RESULT_TIMEOUT)

    def go(self, start_at: float, duration: float) -> None:
        self._broadcast(("go", start_at, duration))

    def results(self) -> list[Sample]:
        return [payload for _, payload in self._collect("done", RESULT_TIMEOUT)]

    def _broadcast(self, message: tuple) -> None:
        for pipe in self._pipes:
            pipe.send(message)

    def _collect(self, expected: str, timeout: float) -> list[tuple[str, Any]]:
        """One message from every worker, in worker order; raise on errors and timeouts."""
        from multiprocessing.connection import wait

        answers: dict[int, tuple[str, Any]] = {}
        deadline = time.monotonic() + timeout
        index_of = {id(pipe): i for i, pipe in enumerate(self._pipes)}
        while len(answers) < len(self._pipes):
            waiting = [p for i, p in enumerate(self._pipes) if i not in answers]
            ready = wait(waiting, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                raise BenchError(f"{self.lib}: {len(waiting)} workers sent no {expected!r} "
                                 f"within {timeout:.0f}s")
            for pipe in ready:
                try:
                    answers[index_of[id(pipe)]] = pipe.recv()
                except EOFError:
                    raise BenchError(f"a {self.lib} worker died (waiting for {expected!r})") \
                        from None
        errors = [payload for kind, payload in answers.values() if kind == "error"]
        if errors:
            raise BenchError(f"{len(errors)} {self.lib} worker(s) failed:\n{errors[0]}")
        return [answers[i] for i in range(len(self._pipes))]


# -- one measured run -----------------------------------------------------------------------------


@dataclass
class Env:
    """The cluster and broker a run measures."""

    nodes: int
    cluster: DevCluster
    broker: BrokerProcess
    target: Target
    ports: set[int]

    @property
    def broker_pid(self) -> int:
        assert self.broker.proc is not None
        return self.broker.proc.pid

    @property
    def jvm_pids(self) -> list[int]:
        return [pid for pid in self.cluster.pids if pid is not None]


def percentile(ordered: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted nanoseconds, in microseconds."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))
    return ordered[rank] / 1000


def latencies_of(samples: list[Sample]) -> list[int]:
    from array import array

    merged = array("q")
    for sample in samples:
        merged.frombytes(sample.latencies_ns)
    return sorted(merged)


def connections(env: Env, pool: WorkerPool) -> dict[str, int]:
    """Established connections to the node ports: the broker's and the workers' own."""
    workers = sum(established_connections(pid, env.ports) for pid in pool.pids)
    broker = established_connections(env.broker_pid, env.ports)
    return {"workers": workers, "broker": broker,
            "cluster": workers + (broker if pool.lib == "libclient" else 0)}


def measure(env: Env, pool: WorkerPool, workload: str, duration: float) -> dict[str, Any]:
    """Prepare, then one timed window of all workers together; the probes around it."""
    pool.prepare(workload)
    start_at = time.monotonic() + 0.2 + 0.003 * pool.size
    pool.go(start_at, duration)
    sleep_until(start_at)
    cpu0 = cpu_snapshot(env, pool)
    sleep_until(start_at + duration / 2)
    conns = connections(env, pool)
    samples = pool.results()
    cpu1 = cpu_snapshot(env, pool)
    return summarise(samples, cpu0, cpu1, conns, rss_mb(env.broker_pid))


def summarise(samples: list[Sample], cpu0: dict[str, float], cpu1: dict[str, float],
              conns: dict[str, int], broker_rss: float) -> dict[str, Any]:
    ops = sum(s.ops for s in samples)
    units = sum(s.units for s in samples)
    elapsed = max(s.ended for s in samples) - min(s.started for s in samples)
    ordered = latencies_of(samples)
    row = {
        "ops": ops, "units": units, "elapsed_s": elapsed, "ops_per_s": ops / elapsed,
        "units_per_s": units / elapsed, "p50_us": percentile(ordered, 0.50),
        "p99_us": percentile(ordered, 0.99), "p999_us": percentile(ordered, 0.999),
        "broker_rss_mb": broker_rss, "conns_cluster": conns["cluster"],
        "conns_broker": conns["broker"], "conns_workers": conns["workers"],
    }
    for name, before in cpu0.items():
        row[f"{name}_cpu_us_per_op"] = (cpu1[name] - before) * 1e6 / ops
        row[f"{name}_cpu_us_per_unit"] = (cpu1[name] - before) * 1e6 / units
    return row


# -- the phases -----------------------------------------------------------------------------------


@contextlib.contextmanager
def running_broker(cluster: DevCluster, settings: Settings, workdir: str) -> Iterator[
        BrokerProcess]:
    cpn = settings.connections_per_node
    options: dict[str, Any] = {"cluster.connections_per_node": cpn, "log.level": "warning",
                               "broker.event_loop": settings.event_loop}
    if settings.coalesce_reads:
        options["limits.coalesce_reads"] = True
    broker = BrokerProcess(cluster.addresses, workdir=workdir, settings=options)
    try:
        broker.start(wait_nodes=cluster.nodes * cpn)
        yield broker
    finally:
        code = broker.stop()
        if code not in (0, None):
            print(f"broker exited with {code}:\n{broker.log()}", file=sys.stderr)


@contextlib.contextmanager
def environment(nodes: int, base_port: int, settings: Settings,
                workloads: set[str] | None = None) -> Iterator[Env]:
    """A dev cluster, a broker on it, and the data every workload needs; all stopped after."""
    print(f"== starting a {nodes}-node cluster on base port {base_port}", flush=True)
    with DevCluster(nodes=nodes, base_port=base_port) as cluster, \
            tempfile.TemporaryDirectory(prefix="bench-broker-") as workdir, \
            running_broker(cluster, settings, workdir) as broker:
        endpoint = broker.stream_endpoint if settings.transport == "stream" else broker.endpoint
        target = Target(tuple(cluster.addresses), endpoint)
        env = Env(nodes, cluster, broker, target, {port for _, port in cluster.addresses})
        began = time.monotonic()
        _setup(target, workloads or set())
        print(f"   cluster up in {cluster.start_seconds:.1f}s, data loaded in "
              f"{time.monotonic() - began:.1f}s (Ignite {cluster.ignite_version}, "
              f"broker pid {env.broker_pid})", flush=True)
        yield env


def _setup(target: Target, workloads: set[str]) -> None:
    libs = {name: Lib(name) for name in LIBS}
    clients = {name: lib.connect(target) for name, lib in libs.items()}
    try:
        setup_cluster(clients, libs, workloads)
    finally:
        for client in clients.values():
            client.close()


def run_level(env: Env, ctx: Any, workers: int, workloads: list[str], settings: Settings,
              results: Results) -> None:
    """Every workload at one worker count: both pools up, reps alternating who goes first."""
    with contextlib.ExitStack() as stack:
        pools = {lib: stack.enter_context(WorkerPool(ctx, lib, env.target, workers))
                 for lib in LIBS}
        for workload in workloads:
            for rep in range(_reps(workload, settings)):
                order = LIBS if rep % 2 == 0 else LIBS[::-1]
                for lib in order:
                    row = measure(env, pools[lib], workload, settings.duration)
                    row.update(lib=lib, workload=workload, nodes=env.nodes, workers=workers,
                               rep=rep)
                    results.samples.append(row)
                    _progress(row, _reps(workload, settings))


def _reps(workload: str, settings: Settings) -> int:
    """--quick streams SQL once per library: one pyignite stream takes ~10-15 s here."""
    return 1 if workload == "sql" and settings.mode.startswith("quick") else settings.reps


def _progress(row: dict[str, Any], reps: int) -> None:
    rows = WORKLOADS[row["workload"]].unit == "rows"
    unit = "rows/s" if rows else "ops/s"
    broker = (f" broker {row['broker_cpu_us_per_unit']:5.1f} µs/{'row' if rows else 'op'}"
              if row["lib"] == "libclient" else "")
    print(f"   [{row['nodes']}n W={row['workers']:<3}] {row['workload']:8} {row['lib']:9} "
          f"rep {row['rep'] + 1}/{reps}: {row['units_per_s']:>10,.0f} {unit:6} "
          f"p50 {row['p50_us']:8.0f} µs  p99 {row['p99_us']:8.0f} µs  "
          f"conns {row['conns_cluster']:3}{broker}", flush=True)


def run_floors(env: Env, ctx: Any, settings: Settings, results: Results) -> None:
    print("== floor: bare ZeroMQ echo, raw Ignite get, the broker without the stub", flush=True)
    results.floors = floor.ladder(env.target.addresses[0], env.broker.endpoint,
                                  env.broker.stream_endpoint, settings.floor_n, ctx)
    for row in results.floors:
        print(f"   {row['name']:58} p50 {row['p50_us']:7.0f} µs  p99 {row['p99_us']:7.0f} µs",
              flush=True)
    print("== stages: one sequential get, stage by stage (a stamping broker of its own)",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as workdir:
        results.stages = stages.stage_rung(env.target.addresses[0], ctx, settings.floor_n,
                                           workdir)
    for line in stages.render(results.stages):
        print(f"   {line}", flush=True)


def run_idle(env: Env, ctx: Any, settings: Settings, results: Results) -> None:
    """A fresh broker on the same cluster, its RSS alone and with N idle stubs."""
    print(f"== broker RSS with {settings.idle_stubs} idle stubs", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as workdir, \
            running_broker(env.cluster, settings, workdir) as broker:
        assert broker.proc is not None
        results.idle = floor.idle_stubs_rss(broker, settings.idle_stubs, ctx)
    print(f"   {results.idle}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as workdir, \
            running_broker(env.cluster, settings, workdir) as broker:
        results.idle_zmq = floor.idle_stubs_rss(broker, settings.idle_stubs, ctx,
                                                endpoint=broker.endpoint)
    print(f"   {results.idle_zmq}", flush=True)


SPY = Path(sys.executable).with_name("py-spy")


def py_spy(pid: int, seconds: float, path: Path) -> None:
    """``py-spy record -r 500 -f raw`` of a process for ``seconds`` (blocking); --idle keeps
    the samples spent waiting in select/poll, so the report can say how idle it was."""
    command = [str(SPY), "record", "-r", "500", "-f", "raw", "--idle", "-d",
               str(max(1, round(seconds))), "-p", str(pid), "-o", str(path)]
    subprocess.run(command, check=True, capture_output=True, timeout=seconds + 60)


def _record_profile(results: Results, name: str, path: Path, cell: str,
                    ops_per_s: float) -> None:
    summary = report.summarise_profile(path)
    summary.update(cell=cell, ops_per_s_while_profiled=ops_per_s, file=path.name)
    results.profiles[name] = summary
    print(f"   {name}: {summary['samples']} samples, {summary['idle_pct']:.0f}% waiting, "
          f"{ops_per_s:,.0f} ops/s while profiled", flush=True)


def run_saturation(env: Env, ctx: Any, settings: Settings, results: Results) -> None:
    """The broker as the bottleneck (pipelined raw gets), measured, then profiled."""
    seconds = max(3.0, settings.duration * 2)
    print(f"== broker at saturation: pipelined raw cache_get, {seconds:g}s", flush=True)
    results.saturation = floor.broker_saturation(env.broker, seconds, ctx)
    print(f"   {results.saturation}", flush=True)
    results.saturation_zmq = floor.broker_saturation(env.broker, seconds, ctx,
                                                     endpoint=env.broker.endpoint)
    print(f"   {results.saturation_zmq}", flush=True)
    if not (settings.profile and SPY.exists()):
        return
    path = RESULTS_DIR / f"{settings.prefix}-profile-broker-saturated.txt"
    profiled = floor.broker_saturation(
        env.broker, settings.profile_s + 1, ctx,
        during=lambda start: py_spy(env.broker_pid, settings.profile_s, path))
    _record_profile(results, "broker-saturated", path, "broker under pipelined raw cache_get "
                    f"(8 unix:// connections x 16 in flight), {env.nodes} node(s)",
                    profiled["ops_per_s"])


def run_profiles(env: Env, ctx: Any, workers: int, settings: Settings,
                 results: Results) -> None:
    """py-spy on the broker under libclient workers (mix at the largest W), then on one
    worker of each library running sequential gets."""
    if not SPY.exists():
        results.profiles["error"] = f"{SPY} not found"
        return
    print(f"== profiles (py-spy, {settings.profile_s:g}s each)", flush=True)
    cells = [("broker", "libclient", workers, "mix"), ("stub", "libclient", 1, "get"),
             ("pyignite", "pyignite", 1, "get")]
    for name, lib, size, workload in cells:
        path = RESULTS_DIR / f"{settings.prefix}-profile-{name}.txt"
        with WorkerPool(ctx, lib, env.target, size) as pool:
            pid = env.broker_pid if name == "broker" else pool.pids[0]
            ops_per_s = _profile_one(pool, workload, pid, path, settings.profile_s)
        _record_profile(results, name, path, f"{lib} {workload} W={size} on {env.nodes} "
                        "node(s)", ops_per_s)


def _profile_one(pool: WorkerPool, workload: str, pid: int, path: Path,
                 seconds: float) -> float:
    pool.prepare(workload)
    start_at = time.monotonic() + 0.3
    pool.go(start_at, seconds + 2.0)
    sleep_until(start_at + 0.5)
    py_spy(pid, seconds, path)
    samples = pool.results()
    return summarise(samples, {}, {}, {"cluster": 0, "broker": 0, "workers": 0},
                     0.0)["ops_per_s"]


def run_stub_import(settings: Settings, results: Results) -> None:
    script = ROOT / "bench" / "stub_import.py"
    if not script.exists():
        return
    print("== bench/stub_import.py", flush=True)
    done = subprocess.run([sys.executable, str(script), "--runs", str(settings.import_runs),
                           "--json"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    try:
        results.stub_import = json.loads(done.stdout)
    except json.JSONDecodeError:
        results.stub_import = {"error": (done.stdout + done.stderr)[-2000:]}


def run_codec(settings: Settings, results: Results) -> None:
    """bench/codec_bench.py (it rewrites its own bench/results/codec.md); in --quick mode its
    last saved result is quoted instead of re-running it."""
    script = ROOT / "bench" / "codec_bench.py"
    saved = RESULTS_DIR / "codec.md"
    if not script.exists():
        return
    if settings.mode == "quick":
        if saved.exists():
            results.codec = {"rerun": False, "text": saved.read_text()}
        return
    print("== bench/codec_bench.py", flush=True)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)
    results.codec = {"rerun": True, "text": done.stdout or done.stderr[-2000:]}


# -- main -----------------------------------------------------------------------------------------


def tree_state() -> str:
    """The commit the broker about to start runs, and whether broker/, libclient/ or protocol/
    had uncommitted changes (other people work in this tree while benchmarks run)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=30)
        return done.stdout.strip()

    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = git("log", "-1", "--format=%h %s")
        dirty = git("status", "--porcelain", "--", "broker", "libclient", "protocol")
        changed = len(dirty.splitlines())
        return head + (f" (+{changed} uncommitted files in broker/ libclient/ protocol/)"
                       if changed else "")
    return "unknown"


def coalescing_status(settings: Settings) -> str:
    """Whether this tree's broker can coalesce identical concurrent reads, and if it did."""
    from broker.config import SETTINGS

    setting = next((s for s in SETTINGS if s.name == "limits.coalesce_reads"), None)
    if setting is None:
        return ("NO: broker/dispatch.py sends every read to a node; identical concurrent reads "
                "are not merged")
    state = "ON in this run" if settings.coalesce_reads else "off in this run (the default)"
    return (f"YES, optional: `limits.coalesce_reads` (default {setting.default}; "
            f"broker/dispatch.py Dispatcher.join_identical_read), {state}")


def run_cluster(index: int, nodes: int, ctx: Any, settings: Settings, results: Results) -> None:
    base_port = settings.base_port + 10 * index
    levels = settings.plan[nodes]
    workloads = {w for cell in levels.values() for w in cell}
    results.code[f"{nodes} node(s)"] = tree_state()
    with environment(nodes, base_port, settings, workloads) as env:
        results.machine.setdefault("ignite", env.cluster.ignite_version)
        with contextlib.suppress(Exception):  # the compiled hot path (broker/native.py) or not
            results.machine.setdefault("broker_native", env.broker.admin("show version")["native"])
        for workers, workloads in sorted(levels.items()):
            print(f"== {nodes} node(s), W={workers}: {', '.join(workloads)}", flush=True)
            run_level(env, ctx, workers, workloads, settings, results)
        with contextlib.suppress(Exception):
            results.broker_stats[f"{nodes} node(s)"] = env.broker.admin("show stats")
        if index == 0 and settings.floor:
            run_floors(env, ctx, settings, results)
        if index == 0 and settings.idle:
            run_idle(env, ctx, settings, results)
        if index == 0 and settings.saturation:
            run_saturation(env, ctx, settings, results)
        if index == len(settings.plan) - 1 and settings.profile:
            run_profiles(env, ctx, max(levels), settings, results)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    RESULTS_DIR.mkdir(exist_ok=True)
    results = Results(settings=asdict(settings), machine=report.machine_info(),
                      coalescing=coalescing_status(settings))
    ctx = forkserver_context()
    began = time.monotonic()
    for index, nodes in enumerate(sorted(settings.plan)):
        run_cluster(index, nodes, ctx, settings, results)
    if settings.stub_import:
        run_stub_import(settings, results)
    if settings.codec:
        run_codec(settings, results)
    results.machine["loadavg_end"] = report.loadavg()
    results.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    results.settings["wall_s"] = round(time.monotonic() - began)
    paths = report.write(asdict(results), RESULTS_DIR, settings.prefix)
    print(paths["markdown"].read_text())
    print(f"written: {', '.join(str(p.relative_to(ROOT)) for p in paths.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
