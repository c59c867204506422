"""The soak and the restart measurement of issue 11: worker processes of mixed load (get, put,
get_all/put_all, transactions, SQL) on both transports through one real broker, node restarts
and broker restarts (SIGTERM + start, in-place upgrade, kill -9 + start) on a schedule, the
broker's RSS and fd count sampled; at the end every acknowledged write is read back, errors are
counted by kind, slopes are computed, and (with matplotlib, the ``bench`` extra) a PNG drawn.

    # the 30-minute soak against a hand-started 3-node dev cluster (docs/reliability.md)
    python -m tests.integration.soak run --base-port 12180 --minutes 30 --png docs/soak.png
    # the restart measurement: broker restarts only, every 20 s, kinds in turn
    python -m tests.integration.soak run --base-port 12180 --minutes 5 --node-every 0 \\
        --broker-every 20 --kinds term,upgrade,kill [--socket-activation]

``python -m tests.integration.soak worker ...`` is one worker process (started by ``run``).
Used by tests/integration/test_soak_short.py (2 minutes, no chart).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.devcluster import DevCluster
from broker.devcluster.errors import NodeStartError
from libclient import Client
from libclient.datatypes import cache_config as cc
from libclient.datatypes import prop_codes as p
from libclient.exceptions import BrokerUnavailable
from libclient.transport import Transport
from tests.integration.daemon import WAIT, Daemon, listening_socket

KV, TX = "soak", "soak-tx"
TABLE_ROWS = 100
REQUEST_TIMEOUT = 30.0
CONNECT_TIMEOUT = 20.0
SLOW = 0.25  # requests longer than this are kept (start, end, op) for the restart windows
KEEP_SLOW = 5000
KEEP_FAILURES = 200
KINDS = ("term", "upgrade", "kill")
NODE_START = 300.0  # a JVM's start on a loaded 2-core machine: a bound, not a speed claim

# PARTITIONED, backups=1, FULL_SYNC: an acknowledged write survives one node's restart
# (with PRIMARY_SYNC it could be lost with its primary: Ignite's contract, not ours).
_DURABLE = {p.PROP_CACHE_MODE: cc.CacheMode.PARTITIONED, p.PROP_BACKUPS_NUMBER: 1,
            p.PROP_WRITE_SYNCHRONIZATION_MODE: cc.WriteSynchronizationMode.FULL_SYNC}


def kind_of(exc: BaseException) -> str:
    """An error's kind for counting: its class and the phrase that says what happened."""
    text = str(exc).lower()
    for phrase in ("may have been applied", "was not sent", "nothing was changed",
                   "shutting down", "no ignite node", "refused", "timed out", "deadline",
                   "transaction", "node left", "topology"):
        if phrase in text:
            return f"{type(exc).__name__} ({phrase})"
    return f"{type(exc).__name__}: {text[:60]}"


def maybe_applied(exc: BaseException) -> bool:
    return bool(getattr(exc, "maybe_applied", None)) or "may have been applied" in str(exc)


# -- one worker process ----------------------------------------------------------------------


class Tally:
    """What one worker saw, written as JSON at the end."""

    def __init__(self) -> None:
        self.acked: dict[str, list[int]] = {KV: [], TX: []}
        self.ok: collections.Counter[str] = collections.Counter()
        self.failed: collections.Counter[str] = collections.Counter()
        self.failures: list[tuple[float, str, str, str]] = []  # (monotonic time, op, kind, text)
        self.maybe_applied = 0
        self.wrong: list[str] = []
        self.slow: list[tuple[float, float, str]] = []
        self.worst = 0.0

    def done(self, op: str, started: float) -> None:
        ended = time.monotonic()
        self.ok[op] += 1
        self._took(op, started, ended)

    def fail(self, op: str, started: float, exc: Exception) -> None:
        ended = time.monotonic()
        kind = kind_of(exc)
        self.failed[f"{op}: {kind}"] += 1
        self.maybe_applied += maybe_applied(exc)
        if len(self.failures) < KEEP_FAILURES:
            self.failures.append((ended, op, kind, f"{type(exc).__name__}: {exc}"[:300]))
        self._took(op, started, ended)

    def _took(self, op: str, started: float, ended: float) -> None:
        self.worst = max(self.worst, ended - started)
        if ended - started > SLOW and len(self.slow) < KEEP_SLOW:
            self.slow.append((started, ended, op))

    def as_json(self) -> dict[str, Any]:
        return {"acked": self.acked, "ok": self.ok, "failed": self.failed,
                "failures": self.failures, "maybe_applied": self.maybe_applied,
                "wrong": self.wrong, "slow": self.slow, "worst": self.worst}


class MixedLoad:
    """One connection's round of operations; every write uses fresh keys ``<tag>:<seq>``."""

    def __init__(self, client: Client, tag: str, tally: Tally) -> None:
        self.client, self.tag, self.tally = client, tag, tally
        self.kv = client.get_cache(KV)
        self.tx = client.get_cache(TX)
        self.seq = 0
        self.rng = random.Random(tag)

    def _keys(self, n: int) -> list[int]:
        first = self.seq + 1
        self.seq += n
        return list(range(first, first + n))

    def key(self, seq: int) -> str:
        return f"{self.tag}:{seq}"

    def step(self) -> None:
        op = self.rng.choice(("put", "put", "get", "put_all", "get_all", "tx", "sql"))
        started = time.monotonic()
        try:
            getattr(self, f"_{op}")()
        except Exception as exc:  # every failure is counted by kind, none ends the worker
            self.tally.fail(op, started, exc)
        else:
            self.tally.done(op, started)

    def _put(self) -> None:
        [seq] = self._keys(1)
        self.kv.put(self.key(seq), seq)
        self.tally.acked[KV].append(seq)

    def _get(self) -> None:
        acked = self.tally.acked[KV]
        if acked:
            seq = acked[-1 - self.rng.randrange(min(len(acked), 50))]
            self._check(seq, self.kv.get(self.key(seq)))

    def _put_all(self) -> None:
        seqs = self._keys(5)
        self.kv.put_all({self.key(s): s for s in seqs})
        self.tally.acked[KV].extend(seqs)

    def _get_all(self) -> None:
        seqs = self.tally.acked[KV][-5:]
        got = self.kv.get_all([self.key(s) for s in seqs])
        for seq in seqs:
            self._check(seq, got.get(self.key(seq)))

    def _tx(self) -> None:
        seqs = self._keys(2)
        with self.client.tx_start() as tx:
            for seq in seqs:
                self.tx.put(self.key(seq), seq)
            tx.commit()
        self.tally.acked[TX].extend(seqs)

    def _sql(self) -> None:
        row = self.rng.randrange(TABLE_ROWS)
        rows = list(self.client.sql("SELECT v FROM soak_sql WHERE id = ?", query_args=[row]))
        if rows != [[f"row {row}"]]:
            self.tally.wrong.append(f"sql {row}: {rows!r}")

    def _check(self, seq: int, got: Any) -> None:
        if got != seq:
            self.tally.wrong.append(f"{self.key(seq)}: {got!r}")


def worker_main(endpoint: str, tag: str, stop_file: str, out_file: str) -> int:
    tally = Tally()
    client = Client(broker=endpoint, timeout=REQUEST_TIMEOUT, connect_timeout=CONNECT_TIMEOUT)
    client.connect()
    load = MixedLoad(client, tag, tally)
    open(out_file + ".running", "w").close()
    while not os.path.exists(stop_file):
        load.step()
    client.close()
    with open(out_file + ".tmp", "w") as out:
        json.dump(tally.as_json(), out)
    os.rename(out_file + ".tmp", out_file)
    return 0


# -- the conductor ---------------------------------------------------------------------------


@dataclass
class Event:
    """A restart: what, when it began (monotonic), when service was back, and details."""

    what: str
    started: float
    ready: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    minutes: float = 30.0
    workers: int = 32
    node_every: float = 180.0  # seconds between node restarts; 0: none
    broker_every: float = 120.0  # seconds between broker restarts; 0: none
    kinds: tuple[str, ...] = KINDS
    sample_every: float = 3.0
    socket_activation: bool = False


class Sampler(threading.Thread):
    """The serving broker's RSS (KiB) and open fds every few seconds."""

    def __init__(self, daemon: Daemon, every: float) -> None:
        super().__init__(daemon=True, name="soak-sampler")
        self.broker, self.every = daemon, every
        self.samples: list[tuple[float, int, int, int]] = []  # (t, pid, rss KiB, fds)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            pid = self.broker.serving_pid()
            with contextlib.suppress(OSError, TypeError, ValueError, StopIteration):
                status = Path(f"/proc/{pid}/status").read_text()
                rss = int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS"))
                          .split()[1])
                self.samples.append((time.monotonic(), pid, rss, len(os.listdir(
                    f"/proc/{pid}/fd"))))


class Soak:
    """Runs a plan against ``cluster`` in ``workdir``; ``run()`` returns the report (a dict)."""

    def __init__(self, cluster: DevCluster, workdir: Path, plan: Plan) -> None:
        self.cluster, self.workdir, self.plan = cluster, workdir, plan
        self.daemon = Daemon(workdir, cluster.addresses)
        self.sockets: list[tuple[str, socket.socket]] = []
        if plan.socket_activation:
            self.sockets = [("unix", listening_socket(self.daemon.stream_path)),
                            ("ipc", listening_socket(self.daemon.ipc_path))]
        self.events: list[Event] = []
        self.t0 = 0.0
        run = uuid.uuid4().hex[:8]  # keys of an earlier run on the same cluster never count
        self.tags = [f"{run}-w{i}-{('unix', 'ipc')[i % 2]}" for i in range(plan.workers)]

    # -- broker ---------------------------------------------------------------------------------

    def _start_broker(self) -> int:
        pid = self.daemon.start(sockets=self.sockets or None)
        self._wait_serving(pid)
        return pid

    def _wait_serving(self, pid: int) -> None:
        deadline = time.monotonic() + WAIT
        transport = Transport(self.daemon.endpoints["ipc"], timeout=1.0, retries=0)
        try:
            while time.monotonic() < deadline:
                if self.daemon.serving_pid() == pid:
                    with contextlib.suppress(BrokerUnavailable):
                        if transport.call("hello", {})["nodes_ready"] >= 1:
                            return
                time.sleep(0.02)
        finally:
            transport.close()
        raise RuntimeError(f"the broker (pid {pid}) did not serve:\n{self.daemon.log()}")

    def restart_broker(self, kind: str) -> Event:
        old = self.daemon.serving_pid()
        assert old is not None
        event = Event(f"broker {kind}", time.monotonic(), detail={"old_pid": old})
        if kind == "upgrade":
            result = subprocess.run(
                [sys.executable, "-m", "broker", "upgrade", "--config",
                 str(self.daemon.config_path)],
                capture_output=True, text=True, timeout=WAIT + 30, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"upgrade failed: {result.stdout} {result.stderr}")
            event.ready = time.monotonic()
        else:
            os.kill(old, signal.SIGTERM if kind == "term" else signal.SIGKILL)
            self.daemon.wait_exit(old)
            event.detail["old_exited"] = time.monotonic() - event.started
            new = self._start_broker()
            event.ready = time.monotonic()
            event.detail["new_pid"] = new
        return event

    # -- nodes ----------------------------------------------------------------------------------

    def restart_node(self, idx: int) -> Event:
        """kill -9 of node ``idx``, then start it again and wait until the cluster is
        rebalanced: until then the node holds no copy of its partitions, and the next node
        restart would lose the data only the killed one had (one backup).  A slow start or
        rebalance (a loaded machine) is recorded and waited for, not fatal."""
        event = Event(f"node {idx} kill -9", time.monotonic())
        self.cluster.kill_node(idx)
        try:
            self.cluster.start_node(idx, timeout=NODE_START)
        except NodeStartError as exc:
            event.detail["start_error"] = str(exc)
            if not self.cluster.record.nodes[idx].alive():
                self.cluster.start_node(idx, timeout=NODE_START)
        event.ready = time.monotonic()
        try:
            self.cluster.await_rebalanced(idx, timeout=NODE_START)
        except NodeStartError as exc:
            event.detail["rebalance_error"] = str(exc)
        event.detail["rebalanced_s"] = round(time.monotonic() - event.started, 2)
        return event

    # -- the run ----------------------------------------------------------------------------------

    def prepare(self) -> None:
        with Client(broker=self.daemon.endpoints["unix"], timeout=60.0) as client:
            client.connect()
            client.get_or_create_cache({p.PROP_NAME: KV, **_DURABLE})
            client.get_or_create_cache({
                p.PROP_NAME: TX, **_DURABLE,
                p.PROP_CACHE_ATOMICITY_MODE: cc.CacheAtomicityMode.TRANSACTIONAL})
            client.sql("CREATE TABLE IF NOT EXISTS soak_sql (id INT PRIMARY KEY, v VARCHAR) "
                       'WITH "backups=1,write_synchronization_mode=FULL_SYNC"')
            for row in range(TABLE_ROWS):
                client.sql("MERGE INTO soak_sql (id, v) VALUES (?, ?)",
                           query_args=[row, f"row {row}"])

    def schedule(self) -> list[tuple[float, str]]:
        """(seconds from the start, action) in time order; actions never overlap."""
        plan, length = self.plan, self.plan.minutes * 60
        actions: list[tuple[float, str]] = []
        if plan.broker_every:
            at, i = plan.broker_every / 2, 0
            while at < length - 10:
                actions.append((at, f"broker {plan.kinds[i % len(plan.kinds)]}"))
                at, i = at + plan.broker_every, i + 1
        if plan.node_every:
            at, i = plan.node_every, 0
            while at < length - 20:
                actions.append((at, f"node {i % len(self.cluster.addresses)}"))
                at, i = at + plan.node_every, i + 1
        return sorted(actions)

    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            self.daemon.stop(self.daemon.serving_pid())
            self.daemon.stop()
            for _, sock in self.sockets:
                sock.close()

    def _run(self) -> dict[str, Any]:
        stop_file = self.workdir / "stop"
        self._start_broker()
        sampler = Sampler(self.daemon, self.plan.sample_every)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            self.prepare()
            procs = self._spawn_workers(stop_file)
            self.t0 = time.monotonic()
            sampler.start()
            for at, action in self.schedule():
                time.sleep(max(0.0, self.t0 + at - time.monotonic()))
                what, arg = action.split()
                event = self.restart_broker(arg) if what == "broker" else self.restart_node(
                    int(arg))
                self.events.append(event)
                print(f"{event.started - self.t0:8.1f}s {event.what}: "
                      f"{event.ready - event.started:.2f}s", flush=True)
            time.sleep(max(0.0, self.t0 + self.plan.minutes * 60 - time.monotonic()))
        finally:
            stop_file.touch()
            for proc in procs:
                proc.wait(WAIT)
            sampler.stopped.set()
        results = [json.loads((self.workdir / f"w{i}.json").read_text())
                   for i in range(len(procs))]
        return self._report(results, sampler.samples)

    def _spawn_workers(self, stop_file: Path) -> list[subprocess.Popen[bytes]]:
        procs = []
        for i, tag in enumerate(self.tags):
            endpoint = self.daemon.endpoints[tag.rsplit("-", 1)[1]]
            out = self.workdir / f"w{i}.json"
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.integration.soak", "worker", endpoint, tag,
                 str(stop_file), str(out)],
                stdout=subprocess.DEVNULL, stderr=open(self.workdir / f"w{i}.err", "wb")))  # noqa: SIM115
        deadline = time.monotonic() + WAIT
        while not all((self.workdir / f"w{i}.json.running").exists() for i in range(len(procs))):
            if time.monotonic() > deadline or any(proc.poll() is not None for proc in procs):
                raise RuntimeError("a soak worker did not start: see w*.err in "
                                   f"{self.workdir}")
            time.sleep(0.1)
        return procs

    # -- the report -------------------------------------------------------------------------------

    def _report(self, results: list[dict[str, Any]],
                samples: list[tuple[float, int, int, int]]) -> dict[str, Any]:
        ok: collections.Counter[str] = collections.Counter()
        failed: collections.Counter[str] = collections.Counter()
        for r in results:
            ok.update(r["ok"])
            failed.update(r["failed"])
        acked, missing = self._verify(results)
        return {
            "plan": self.plan.__dict__ | {"kinds": list(self.plan.kinds)},
            "seconds": (samples[-1][0] - self.t0) if samples else 0.0,
            "requests_ok": dict(ok), "requests_ok_total": sum(ok.values()),
            "failed_by_kind": dict(failed), "failed_total": sum(failed.values()),
            "maybe_applied": sum(r["maybe_applied"] for r in results),
            "wrong_reads": [w for r in results for w in r["wrong"]][:20],
            "failure_texts": sorted({f"{op}: {text}" for r in results
                                     for _, op, _, text in r["failures"]})[:40],
            "acked_writes": acked, "acked_writes_lost": missing,
            "worst_request_s": max(r["worst"] for r in results),
            "events": [self._event_row(e, results) for e in self.events],
            "rss_fd": _trend(samples, self.t0),
            "samples": [(t - self.t0, pid, rss, fds) for t, pid, rss, fds in samples],
        }

    def _event_row(self, event: Event, results: list[dict[str, Any]]) -> dict[str, Any]:
        """The restart and what workers saw from its start to 5 s after service was back."""
        end = event.ready + 5.0
        worst = max((e - s for r in results for s, e, _ in r["slow"]
                     if s <= event.ready and e >= event.started), default=0.0)
        failures = collections.Counter(
            f"{op}: {kind}" for r in results for t, op, kind, _ in r["failures"]
            if event.started <= t <= end)
        return {"what": event.what, "at_s": round(event.started - self.t0, 1),
                "restart_s": round(event.ready - event.started, 3),
                "worst_overlapping_request_s": round(worst, 3),
                "failures": dict(failures), **event.detail}

    def _verify(self, results: list[dict[str, Any]]) -> tuple[int, int]:
        """(acknowledged writes, how many of them are not in the cluster), read back through
        the broker with get_all."""
        total = missing = 0
        with Client(broker=self.daemon.endpoints["unix"], timeout=60.0) as client:
            client.connect()
            for tag, r in zip(self.tags, results, strict=True):
                for name, seqs in r["acked"].items():
                    cache = client.get_cache(name)
                    total += len(seqs)
                    for at in range(0, len(seqs), 1000):
                        batch = seqs[at:at + 1000]
                        got = cache.get_all([f"{tag}:{s}" for s in batch])
                        missing += sum(got.get(f"{tag}:{s}") != s for s in batch)
        return total, missing


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (units per hour) of (seconds, value) points."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in points) / var * 3600


def _trend(samples: list[tuple[float, int, int, int]], t0: float) -> dict[str, Any]:
    """RSS (MiB) and fd slopes over the run and within the longest-lived broker process, and
    each process's last sample (a broker restart starts a fresh process)."""
    if not samples:
        return {}
    by_pid: dict[int, list[tuple[float, int, int, int]]] = {}
    for s in samples:
        by_pid.setdefault(s[1], []).append(s)
    longest = max(by_pid.values(), key=len)
    return {
        "rss_mib_per_hour": round(_slope([(t - t0, r / 1024) for t, _, r, _ in samples]), 2),
        "fds_per_hour": round(_slope([(t - t0, f) for t, _, _, f in samples]), 2),
        "longest_process_samples": len(longest),
        "longest_process_rss_mib_per_hour": round(
            _slope([(t - t0, r / 1024) for t, _, r, _ in longest]), 2),
        "longest_process_fds_per_hour": round(_slope([(t - t0, f) for t, _, _, f in longest]), 2),
        "rss_mib_min_max": [round(min(s[2] for s in samples) / 1024, 1),
                            round(max(s[2] for s in samples) / 1024, 1)],
        "fds_min_max": [min(s[3] for s in samples), max(s[3] for s in samples)],
        "per_process_last": [[round(v[-1][0] - t0), round(v[-1][2] / 1024, 1), v[-1][3]]
                             for v in by_pid.values()],
    }


def chart(report: dict[str, Any], png: Path) -> None:
    """RSS and fds over time, restarts marked (matplotlib: the ``bench`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    minutes = [t / 60 for t, *_ in samples]
    fig, (ax_rss, ax_fd) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    ax_rss.plot(minutes, [r / 1024 for _, _, r, _ in samples], lw=1)
    ax_rss.set_ylabel("broker RSS (MiB)")
    ax_fd.plot(minutes, [f for *_, f in samples], lw=1, color="tab:green")
    ax_fd.set_ylabel("broker open fds")
    ax_fd.set_xlabel("minutes")
    colours = {"term": "tab:red", "upgrade": "tab:purple", "kill": "black"}
    for event in report["events"]:
        kind = event["what"].split()[-1]
        for ax in (ax_rss, ax_fd):
            ax.axvline(event["at_s"] / 60, color=colours.get(kind, "tab:orange"), lw=0.6,
                       ls="--" if event["what"].startswith("node") else "-")
    ax_rss.set_title(f"soak: {report['plan']['workers']} workers, {report['seconds'] / 60:.0f} "
                     "min; lines: broker SIGTERM (red), upgrade (purple), kill -9 (black), "
                     "node kill -9 (orange, dashed)", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=90)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "worker":
        return worker_main(*argv[1:])
    parser = argparse.ArgumentParser(prog="python -m tests.integration.soak run")
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--base-port", type=int, required=True,
                        help="a dev cluster started with `ignite-broker dev-cluster start`")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--node-every", type=float, default=180.0)
    parser.add_argument("--broker-every", type=float, default=120.0)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--socket-activation", action="store_true")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--png", type=Path, help="draw RSS and fds here")
    args = parser.parse_args(argv)
    plan = Plan(args.minutes, args.workers, args.node_every, args.broker_every,
                tuple(args.kinds.split(",")), socket_activation=args.socket_activation)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    report = Soak(DevCluster.attach(args.base_port), workdir, plan).run()
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.png:
        chart(report, args.png)
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=1))
    print(restart_table(report))
    return 0


def restart_table(report: dict[str, Any]) -> str:
    """One line per restart: its length, the worst request overlapping it against the target
    (restart + 0.5 s), and the failures workers saw from its start to 5 s after."""
    lines = ["at_s  what  restart_s  worst_request_s  within_target  failed  maybe_applied"]
    for e in report["events"]:
        failed = sum(e["failures"].values())
        maybe = sum(n for k, n in e["failures"].items() if "may have been applied" in k)
        within = e["worst_overlapping_request_s"] <= e["restart_s"] + 0.5
        lines.append(f"{e['at_s']:7.1f}  {e['what']:18} {e['restart_s']:7.2f}  "
                     f"{e['worst_overlapping_request_s']:7.2f}  {within!s:5}  {failed:4}  "
                     f"{maybe:4}  {e['failures']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
