"""Turns a benchmark run (bench/run.py) into bench/results/: the raw numbers as JSON, a
markdown report (machine, per-cell table with medians and spread, targets PASS/MISS, floor,
idle RSS, stub import, profiles, codec) and a PNG chart.

    .venv/bin/python -m bench.report bench/results/results.json   # re-render from the JSON
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

Row = dict[str, Any]
CellKey = tuple[int, int, str]  # nodes, workers, workload
LIBS = ("pyignite", "libclient")
UNITS = {"sql": "rows/s"}


# -- machine ----------------------------------------------------------------------------------


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _first_line(path: str, prefix: str) -> str:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def _java_version() -> str:
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (done.stderr or done.stdout).splitlines()[0].strip()


def _version(module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "?"


def machine_info() -> dict[str, Any]:
    import zmq

    return {
        "nproc": os.cpu_count(), "cpu": _first_line("/proc/cpuinfo", "model name"),
        "memory": _first_line("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(), "python": sys.version.split()[0],
        "java": _java_version(), "pyignite": _version("pyignite"),
        "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(), "msgpack": _version("msgpack"),
        "loadavg_start": loadavg(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# -- aggregation ------------------------------------------------------------------------------


def _median(rows: list[Row], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def aggregate(rows: list[Row]) -> Row:
    """Medians over repetitions, with min and max of throughput and p50."""
    thru = [r["units_per_s"] for r in rows]
    p50 = [r["p50_us"] for r in rows]
    out = {key: _median(rows, key) for key in (
        "units_per_s", "ops_per_s", "p50_us", "p99_us", "p999_us", "broker_cpu_us_per_op",
        "broker_zmq_cpu_us_per_op", "client_cpu_us_per_op", "cluster_cpu_us_per_op",
        "broker_cpu_us_per_unit", "broker_zmq_cpu_us_per_unit", "client_cpu_us_per_unit",
        "cluster_cpu_us_per_unit", "broker_rss_mb", "conns_cluster", "conns_workers", "ops")}
    out["client_zmq_cpu_us_per_unit"] = statistics.median(
        r.get("client_zmq_cpu_us_per_unit", float("nan")) for r in rows)
    out.update(reps=len(rows), thru_min=min(thru), thru_max=max(thru), p50_min=min(p50),
               p50_max=max(p50))
    return out


def cells(samples: list[Row]) -> dict[CellKey, dict[str, Row]]:
    grouped: dict[CellKey, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in samples:
        grouped[(row["nodes"], row["workers"], row["workload"])][row["lib"]].append(row)
    order = {name: i for i, name in enumerate(dict.fromkeys(r["workload"] for r in samples))}
    keys = sorted(grouped, key=lambda k: (k[0], k[1], order[k[2]]))
    return {k: {lib: aggregate(rows) for lib, rows in grouped[k].items()} for k in keys}


# -- formatting helpers -----------------------------------------------------------------------


def _num(value: float, digits: int = 0) -> str:
    if value != value:  # nan
        return "n/a"
    return f"{value:,.{digits}f}"


def _spread(mid: float, low: float, high: float) -> str:
    return f"{_num(mid)} [{_num(low)}-{_num(high)}]"


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _table(header: list[str], rows: list[list[str]], align: str = "") -> str:
    align = align or "l" * len(header)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# -- the main table ---------------------------------------------------------------------------

_MAIN_HEADER = ["nodes", "W", "workload", "pyignite thru", "libclient thru", "thru lc/py",
                "pyignite p50/p99/p999 µs", "libclient p50/p99/p999 µs", "p50 lc/py",
                "cluster conns py / lc", "broker CPU µs/op (libzmq threads)", "broker RSS MB",
                "worker CPU µs/op py / lc (its libzmq)", "JVM CPU µs/op py / lc",
                "ops/rep py / lc"]


def _lat(a: Row) -> str:
    return f"{_spread(a['p50_us'], a['p50_min'], a['p50_max'])} / {_num(a['p99_us'])} / " \
           f"{_num(a['p999_us'])}"


def _main_row(key: CellKey, agg: dict[str, Row]) -> list[str]:
    nodes, workers, workload = key
    py, lc = agg.get("pyignite"), agg.get("libclient")
    if py is None or lc is None:
        return [str(nodes), str(workers), workload] + ["n/a"] * (len(_MAIN_HEADER) - 3)
    unit = UNITS.get(workload, "ops/s")
    return [
        str(nodes), str(workers), f"{workload} ({unit})",
        _spread(py["units_per_s"], py["thru_min"], py["thru_max"]),
        _spread(lc["units_per_s"], lc["thru_min"], lc["thru_max"]),
        f"**{_ratio(lc['units_per_s'], py['units_per_s']):.2f}x**",
        _lat(py), _lat(lc), f"{_ratio(lc['p50_us'], py['p50_us']):.2f}x",
        f"{py['conns_cluster']:.0f} / {lc['conns_cluster']:.0f}",
        f"{_num(lc['broker_cpu_us_per_unit'], 1)} ({_num(lc['broker_zmq_cpu_us_per_unit'], 1)})",
        _num(lc["broker_rss_mb"], 1),
        f"{_num(py['client_cpu_us_per_unit'], 1)} / {_num(lc['client_cpu_us_per_unit'], 1)} "
        f"({_num(lc['client_zmq_cpu_us_per_unit'], 1)})",
        f"{_num(py['cluster_cpu_us_per_unit'], 1)} / {_num(lc['cluster_cpu_us_per_unit'], 1)}",
        f"{_num(py['ops'])} / {_num(lc['ops'])}",
    ]


def main_table(samples: list[Row]) -> str:
    rows = [_main_row(key, agg) for key, agg in cells(samples).items()]
    return _table(_MAIN_HEADER, rows, "rrl" + "r" * (len(_MAIN_HEADER) - 3))


# -- targets ----------------------------------------------------------------------------------


def _cell(all_cells: dict[CellKey, dict[str, Row]], workload: str, workers: int | None = None,
          nodes: int | None = None) -> tuple[CellKey, dict[str, Row]] | None:
    """The matching cell with both libraries, fewest nodes first."""
    for key, agg in all_cells.items():
        if key[2] != workload or len(agg) < 2:
            continue
        if workers is not None and key[1] != workers:
            continue
        if nodes is not None and key[0] != nodes:
            continue
        return key, agg
    return None


def _verdict(ok: bool | None) -> str:
    return "NOT RUN" if ok is None else "PASS" if ok else "MISS"


def _target_latency(all_cells: dict) -> list[str]:
    found = _cell(all_cells, "get", workers=1)
    name = "single worker sequential get p50: libclient <= 1.0x pyignite"
    if found is None:
        return [name, "not measured", _verdict(None)]
    key, agg = found
    ratio = _ratio(agg["libclient"]["p50_us"], agg["pyignite"]["p50_us"])
    return [name, f"{ratio:.2f}x ({agg['libclient']['p50_us']:.0f} vs "
                  f"{agg['pyignite']['p50_us']:.0f} µs, {key[0]} node)", _verdict(ratio <= 1.0)]


def _target_mix(all_cells: dict, cpn: int) -> list[str]:
    found = _cell(all_cells, "mix", workers=32, nodes=3)
    name = ("32 workers 90/10 mix on 3 nodes: throughput >= 1.5x pyignite, cluster conns = "
            f"3 x {cpn} (pyignite 32 x 3)")
    if found is None:
        return [name, "not measured", _verdict(None)]
    _, agg = found
    py, lc = agg["pyignite"], agg["libclient"]
    ratio = _ratio(lc["units_per_s"], py["units_per_s"])
    conns_ok = lc["conns_cluster"] == 3 * cpn and py["conns_cluster"] == 96
    detail = (f"{ratio:.2f}x ({lc['units_per_s']:,.0f} vs {py['units_per_s']:,.0f} ops/s); "
              f"conns {lc['conns_cluster']:.0f} vs {py['conns_cluster']:.0f}"
              f"{'' if conns_ok else ' (connections NOT as expected)'}")
    return [name, detail, _verdict(ratio >= 1.5 and conns_ok)]


def _target_sql(all_cells: dict) -> list[str]:
    found = _cell(all_cells, "sql", workers=1) or _cell(all_cells, "sql")
    name = "SQL streaming rows/s >= 1.2x pyignite"
    if found is None:
        return [name, "not measured", _verdict(None)]
    key, agg = found
    ratio = _ratio(agg["libclient"]["units_per_s"], agg["pyignite"]["units_per_s"])
    return [name, f"{ratio:.2f}x ({agg['libclient']['units_per_s']:,.0f} vs "
                  f"{agg['pyignite']['units_per_s']:,.0f} rows/s, W={key[1]}, {key[0]} node)",
            _verdict(ratio >= 1.2)]


def _busiest_stub_cell(all_cells: dict) -> tuple[CellKey, Row] | None:
    """The libclient get/put/mix cell with the most workers (then the most ops/s)."""
    best = None
    for key, agg in all_cells.items():
        lc = agg.get("libclient")
        if lc and key[2] in ("get", "put", "mix") and (
                best is None or (key[1], lc["ops_per_s"]) > (best[0][1], best[1]["ops_per_s"])):
            best = (key, lc)
    return best


def _target_cpu(all_cells: dict, saturation: Row | None,
                saturation_zmq: Row | None = None) -> list[str]:
    """Judged on the pipelined raw load over unix:// (the broker is the bottleneck there);
    the same over ZeroMQ and the busiest cell driven by real stubs are quoted beside it."""
    name = "broker CPU per op at saturation <= 15 µs"
    parts, value = [], None
    if saturation and saturation["ops"]:
        value = saturation["broker_cpu_us_per_op"]
        parts.append(f"{value:.1f} µs/op saturated by pipelined raw gets over "
                     f"{saturation.get('endpoint', 'ipc')}:// "
                     f"({saturation['ops_per_s']:,.0f} ops/s, broker "
                     f"{100 * saturation['broker_busy']:.0f}% of a core)")
    if saturation_zmq and saturation_zmq["ops"]:
        parts.append(f"{saturation_zmq['broker_cpu_us_per_op']:.1f} µs/op over ZeroMQ ipc:// "
                     f"({saturation_zmq['ops_per_s']:,.0f} ops/s, libzmq threads "
                     f"{saturation_zmq['broker_zmq_cpu_us_per_op']:.1f} µs/op)")
    best = _busiest_stub_cell(all_cells)
    if best is not None:
        key, lc = best
        busy = lc["broker_cpu_us_per_op"] * lc["ops_per_s"] / 1e6
        parts.append(f"{lc['broker_cpu_us_per_op']:.1f} µs/op under {key[1]} libclient "
                     f"workers ({key[2]}, {key[0]} node(s), {lc['ops_per_s']:,.0f} ops/s, "
                     f"broker {100 * busy:.0f}% of a core)")
        value = lc["broker_cpu_us_per_op"] if value is None else value
    if value is None:
        return [name, "not measured", _verdict(None)]
    return [name, "; ".join(parts), _verdict(value <= 15)]


def _target_idle(*measured: Row | None) -> list[str]:
    """Every transport measured must pass."""
    name = "broker RSS with 1,000 connected idle workers <= 150 MB"
    runs = [idle for idle in measured if idle]
    if not runs:
        return [name, "not measured", _verdict(None)]
    ok = all(idle["rss_mb"] <= 150 and idle["answered"] >= 1000 for idle in runs)
    return [name, "; ".join(f"{idle.get('endpoint', 'ipc')}://: {idle['rss_mb']:.1f} MB with "
                            f"{idle['answered']} stubs (alone {idle['baseline_rss_mb']:.1f} MB; "
                            f"{idle['per_stub_kb']:.1f} KB per stub)" for idle in runs),
            _verdict(ok)]


def targets(results: Row) -> list[list[str]]:
    all_cells = cells(results["samples"])
    cpn = results["settings"]["connections_per_node"]
    return [_target_latency(all_cells), _target_mix(all_cells, cpn), _target_sql(all_cells),
            _target_cpu(all_cells, results.get("saturation"), results.get("saturation_zmq")),
            _target_idle(results.get("idle"), results.get("idle_zmq")),
            _coalescing(results)]


def _coalescing(results: Row) -> list[str]:
    text = results.get("coalescing", "")
    seen = [f"{name}: {stats.get('coalesced_reads', 'n/a')}"
            for name, stats in (results.get("broker_stats") or {}).items()]
    detail = text
    if seen:
        detail += f"; coalesced_reads in `show stats` after the runs: {', '.join(seen)}"
    return ["beyond: concurrent identical reads coalesced", detail,
            "supported" if text.startswith("YES") else "not supported"]


# -- other sections ---------------------------------------------------------------------------


def floor_section(floors: list[Row]) -> str:
    if not floors:
        return "_not run_"
    rows = [[f["name"], _num(f["p50_us"]), _num(f["p99_us"]), _num(f["mean_us"]), str(f["n"])]
            for f in floors]
    text = _table(["sequential round trip", "p50 µs", "p99 µs", "mean µs", "n"], rows, "lrrrr")
    parts = _decomposition({f["key"]: f["p50_us"] for f in floors})
    return text + ("\n\n" + parts if parts else "")


def stages_section(result: Row | None) -> str:
    if not result:
        return "_not run_"
    from bench.stages import render

    return ("p50 of each stage of a libclient `Client.get` (stamps on the stub and in a broker "
            "started with `IGNITE_BROKER_STAGES`, joined by request id; the stamps themselves "
            "cost ~1 µs per stage, so the sum runs above a plain get):\n\n"
            + "\n".join(render(result)))


def _decomposition(p50: dict[str, float]) -> str:
    try:
        lc, raw_get, ping = p50["libclient_get"], p50["broker_get"], p50["ping"]
        ignite, py = p50["raw_get"], p50["pyignite_get"]
        echo, echo_aio = p50["echo"], p50["echo_asyncio"]
    except KeyError:
        return ""
    stream = ""
    if "libclient_get_stream" in p50:
        lcs, raws, pings = (p50["libclient_get_stream"], p50["broker_get_stream"],
                            p50["ping_stream"])
        stream = (f"\n\nOver unix:// the libclient get takes {lcs:.0f} µs ("
                  f"{lcs / py:.2f}x pyignite's {py:.0f} µs): the stub adds ≈ {lcs - raws:.0f} "
                  f"µs over a raw stream get, the broker path ≈ {raws - ignite:.0f} µs over "
                  f"the raw Ignite get, of which the broker's fixed IPC cost (ping) is "
                  f"{pings:.0f} µs.")
    extra = ""
    if "unix_echo" in p50:
        extra += f" A bare AF_UNIX echo (no ZeroMQ) takes {p50['unix_echo']:.0f} µs."
    if "echo_uvloop" in p50:
        extra += f" The asyncio ZeroMQ echo on uvloop takes {p50['echo_uvloop']:.0f} µs."
    if "unix_echo_one_cpu" in p50:
        extra += (f" Pinned, the bare AF_UNIX echo takes {p50['unix_echo_one_cpu']:.0f} µs with "
                  f"both ends on one CPU and {p50['unix_echo_two_cpus']:.0f} µs across two: "
                  "the difference is what the wake-ups across CPUs cost here.")
    stream += _design_floor(p50, ignite, py)
    return (f"Decomposition of the libclient get (p50 {lc:.0f} µs): the stub adds ≈ "
            f"{lc - raw_get:.0f} µs (libclient get - raw DEALER get); the broker path adds ≈ "
            f"{raw_get - ignite:.0f} µs over the raw Ignite get ({ignite:.0f} µs). The broker's "
            f"fixed IPC cost (ping) is {ping:.0f} µs, against {echo_aio:.0f} µs for a bare "
            f"asyncio ZeroMQ echo and {echo:.0f} µs for a blocking one.{extra} pyignite spends "
            f"{py - ignite:.0f} µs over the raw get (p50 {py:.0f} µs).{stream}")


def _design_floor(p50: dict[str, float], ignite: float, py: float) -> str:
    """The least any broker on asyncio can take for a get: the raw Ignite get plus one hop
    through a bare uvloop server (no dispatch, no stub), as a ratio to pyignite's get."""
    if "stream_uvloop_two_cpus" not in p50:
        return ""
    one, two = ignite + p50["stream_uvloop_one_cpu"], ignite + p50["stream_uvloop_two_cpus"]
    zmq = ""
    if "echo_uvloop" in p50:
        floor = ignite + p50["echo_uvloop"]
        zmq = (f" Over ZeroMQ ipc:// (the uvloop ZeroMQ echo, unpinned): {floor:.0f} µs = "
               f"{floor / py:.2f}x.")
    return ("\n\nThe floor of the design on this machine, over unix://: the raw Ignite get plus "
            "one round trip through a bare uvloop server (no dispatch, no stub), "
            f"{one:.0f} µs = {one / py:.2f}x pyignite with the worker and that server on one CPU, "
            f"{two:.0f} µs = {two / py:.2f}x on two.{zmq}")


def saturation_section(sat: Row | None, sat_zmq: Row | None = None) -> str:
    text = "_not run_" if not sat else _saturation_line(sat)
    return text + ("\n\n" + _saturation_line(sat_zmq) if sat_zmq else "")


def _saturation_line(sat: Row) -> str:
    kind = ("unix:// stream connections" if sat.get("endpoint") == "unix"
            else "ZeroMQ DEALER sockets")
    return (f"One process keeps {sat['sockets']} {kind} x {sat['depth']} raw "
            f"`cache_get` requests in flight for {sat['seconds']:g} s (no stub, so the broker "
            f"is the bottleneck): {sat['ops_per_s']:,.0f} ops/s, {sat['errors']} errors, broker"
            f" {100 * sat['broker_busy']:.0f}% of a core, **{sat['broker_cpu_us_per_op']:.1f} "
            f"µs CPU per op** (its libzmq threads {sat['broker_zmq_cpu_us_per_op']:.1f}). "
            "That ops/s is the broker's ceiling on this machine for single-key reads.")


def idle_section(*measured: Row | None) -> str:
    runs = [idle for idle in measured if idle]
    return "\n\n".join(_idle_line(idle) for idle in runs) if runs else "_not run_"


def _idle_line(idle: Row) -> str:
    return (f"Over {idle.get('endpoint', 'ipc')}://: {idle['answered']} of {idle['stubs']} "
            f"idle stubs answered `hello` (each its own "
            f"session, {idle['workers_seen']} workers in `show stats`). Broker RSS "
            f"{idle['baseline_rss_mb']:.1f} MB alone → {idle['rss_mb']:.1f} MB with them "
            f"({idle['per_stub_kb']:.1f} KB per stub).")


def stub_import_section(data: Row | None) -> str:
    if not data:
        return "_bench/stub_import.py not present or not run_"
    if "error" in data:
        return f"bench/stub_import.py failed:\n```\n{data['error']}\n```"
    rows = [[name, _num(v["ms"], 1), _num(v["cpu_ms"], 1), _num(v["rss_mb"], 2)]
            for name, v in data.items()]
    text = _table(["case (bench/stub_import.py)", "wall ms", "CPU ms", "RSS MB"], rows, "lrrr")
    lc, py = data.get("import libclient"), data.get("import pyignite")
    if lc and py:
        text += (f"\n\nimport libclient / import pyignite: time {_ratio(lc['ms'], py['ms']):.2f}x,"
                 f" RSS {_ratio(lc['rss_mb'], py['rss_mb']):.2f}x.")
    return text


def profile_section(profiles: Row) -> str:
    if not profiles:
        return "_not run_"
    if "error" in profiles:
        return f"_{profiles['error']}_"
    out = []
    for name, prof in profiles.items():
        out.append(f"**{name}** — {prof['cell']}: {prof['samples']} samples at 500 Hz, "
                   f"{prof['idle_pct']:.0f}% waiting (select/poll), "
                   f"{prof['ops_per_s_while_profiled']:,.0f} ops/s while profiled "
                   f"(raw: `{prof['file']}`).\n")
        rows = [[f"`{frame}`", f"{pct:.1f}%"] for frame, pct in prof["top_self"]]
        out.append(_table(["self time (busy samples)", "% of all"], rows, "lr"))
        rows = [[f"`{frame}`", f"{pct:.1f}%"] for frame, pct in prof["top_inclusive"]]
        out.append("\n" + _table(["inclusive", "% of all"], rows, "lr") + "\n")
    return "\n".join(out)


def machine_section(results: Row) -> str:
    m = results["machine"]
    s = results["settings"]
    return (f"- {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Linux {m['kernel']}\n"
            f"- Python {m['python']}, {m['java']}, Apache Ignite {m.get('ignite', '?')}, "
            f"pyignite {m['pyignite']}, pyzmq {m['pyzmq']} (libzmq {m['libzmq']}), "
            f"msgpack {m['msgpack']}\n"
            f"- load average at start {m['loadavg_start']}, at end {m.get('loadavg_end')} — "
            "other engineers' test suites shared this machine during the run: absolute numbers"
            " are noisy; both libraries ran interleaved (alternating first) on the same cluster"
            " so the ratios are the fairer reading\n"
            f"- code under test: {_code(results)}\n"
            f"- mode `{s['mode']}`: {s['reps']} repetitions of {s['duration']:g} s windows per "
            f"cell, broker `cluster.connections_per_node = {s['connections_per_node']}`, "
            f"libclient workers reach the broker over "
            f"{'unix://' if s.get('transport', 'zmq') == 'stream' else 'ZeroMQ ipc://'}, "
            f"broker event loop {s.get('event_loop', 'asyncio')}, "
            f"broker hot path {_native(m)}, "
            f"started {m['started']}, took {s.get('wall_s', '?')} s")


def _native(machine: Row) -> str:
    """Whether the run's broker ran its compiled hot path (broker/native.py)."""
    native = machine.get("broker_native")
    if native is None:
        return "pure Python (before the compiled hot path existed, or not reported)"
    if native.get("on"):
        return f"compiled (mypyc, {native.get('compiled_modules')} modules)"
    return f"pure Python ({native.get('reason')})"


def _code(results: Row) -> str:
    code = results.get("code") or {}
    states = set(code.values())
    if not states:
        return "not recorded"
    if len(states) == 1:
        return f"`{states.pop()}` (the forkserver loaded libclient once at the start)"
    return "; ".join(f"{name}: `{state}`" for name, state in code.items()) + \
        " — the tree changed between clusters (each broker loads the code it starts with)"


def markdown(results: Row) -> str:
    sections = [
        "# ignite-broker benchmark: libclient + broker vs pyignite direct\n",
        machine_section(results),
        "\n## Results per cell\n",
        "Medians over repetitions, [min-max] across repetitions. thru = ops/s (rows/s for "
        "SQL), aggregate over all W workers. Latency percentiles over every op of a "
        "repetition (p999 needs ≥1000 ops/rep to mean much: see the last column). cluster conns"
        " = established TCP connections to the node ports (pyignite: summed over the worker "
        "processes; libclient: the broker's, workers hold none). CPU columns: process "
        "utime+stime over the window divided by ops, by rows for SQL (broker includes its "
        "libzmq threads, also shown alone in brackets; worker CPU is summed over the W "
        "workers, and includes each libclient worker's own libzmq thread). Two cores run "
        "everything: workers, broker, JVMs, and other people's tests.\n",
        main_table(results["samples"]),
        "\n## Targets\n",
        _table(["target", "measured", "verdict"], targets(results)),
        "\n## Floor (sequential, 1 worker, same key, 1 node)\n",
        floor_section(results.get("floors") or []),
        "\n## Stage decomposition of one sequential get (bench/stages.py)\n",
        stages_section(results.get("stages")),
        "\n## Broker at saturation\n",
        saturation_section(results.get("saturation"), results.get("saturation_zmq")),
        "\n## Broker memory with idle stubs\n",
        idle_section(results.get("idle"), results.get("idle_zmq")),
        "\n## Stub import cost\n",
        stub_import_section(results.get("stub_import")),
        "\n## Profiles (py-spy)\n",
        profile_section(results.get("profiles") or {}),
        "\n## Codec micro-benchmark (bench/codec_bench.py)\n",
        _codec_section(results.get("codec")),
    ]
    return "\n".join(sections) + "\n"


def _codec_section(codec: Row | None) -> str:
    if not codec:
        return "_not present or skipped_"
    note = "" if codec["rerun"] else "_(not re-run in --quick mode; last saved codec.md)_\n\n"
    return note + codec["text"].strip()


# -- profiles ---------------------------------------------------------------------------------

_WAIT = re.compile(r"(select|poll|epoll|wait|sleep|recv)\b", re.IGNORECASE)
_LINE = re.compile(r":\d+\)$")


def _frame(raw: str) -> str:
    return _LINE.sub(")", raw.strip())


def _is_wait(leaf: str) -> bool:
    name = leaf.split(" (", 1)[0]
    return bool(_WAIT.search(name.rsplit(".", 1)[-1]))


def summarise_profile(path: Path, top: int = 12) -> Row:
    """Self and inclusive time per function (line numbers folded) from py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        total += n
        if _is_wait(frames[-1]):
            idle += n
            continue
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    pct = 100 / max(1, total)
    busy_roots = {f for f, n in inclusive.items() if n >= 0.98 * (total - idle)}
    return {
        "samples": total, "idle_pct": idle * pct,
        "top_self": [(f, n * pct) for f, n in own.most_common(top)],
        "top_inclusive": [(f, n * pct) for f, n in inclusive.most_common(top + len(busy_roots))
                          if f not in busy_roots][:top],
    }


# -- chart ------------------------------------------------------------------------------------


def chart(results: Row, path: Path) -> Path | None:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    all_cells = [(k, a) for k, a in cells(results["samples"]).items() if len(a) == 2]
    if not all_cells:
        return None
    labels = [f"{w} W={n_w} {n}n" for (n, n_w, w), _ in all_cells]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 0.45 * len(labels) + 2.5))
    _ratio_panel(left, labels, [a for _, a in all_cells])
    _latency_panel(right, labels, [a for _, a in all_cells])
    fig.suptitle("libclient + broker vs pyignite direct (same cluster, same run; "
                 f"{results['machine']['nproc']} CPUs, noisy shared machine)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ratio_panel(ax: Any, labels: list[str], aggs: list[dict[str, Row]]) -> None:
    import matplotlib.ticker

    mid = [_ratio(a["libclient"]["units_per_s"], a["pyignite"]["units_per_s"]) for a in aggs]
    low = [_ratio(a["libclient"]["thru_min"], a["pyignite"]["thru_max"]) for a in aggs]
    high = [_ratio(a["libclient"]["thru_max"], a["pyignite"]["thru_min"]) for a in aggs]
    ys = range(len(labels))
    colors = ["tab:green" if m >= 1 else "tab:red" for m in mid]
    ax.barh(ys, mid, color=colors, xerr=[[m - lo for m, lo in zip(mid, low, strict=True)],
                                         [h - m for m, h in zip(mid, high, strict=True)]])
    ax.axvline(1.0, color="black", linewidth=1)
    ax.axvline(1.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log", base=2)
    ticks = [t for t in (0.125, 0.25, 0.5, 1, 1.5, 2, 4, 8, 16, 32)
             if min(low) / 1.5 <= t <= max(high) * 1.5]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    for y, m, h in zip(ys, mid, high, strict=True):
        ax.annotate(f"{m:.2f}x", (max(m, h), y), xytext=(4, -3), textcoords="offset points",
                    fontsize=8)
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xlabel("throughput libclient / pyignite, log scale (whiskers: worst-best rep "
                  "pairing; dashed: 1.5x)")


def _latency_panel(ax: Any, labels: list[str], aggs: list[dict[str, Row]]) -> None:
    import matplotlib.ticker

    height = 0.4
    for offset, lib, color in ((-height / 2, "pyignite", "tab:blue"),
                               (height / 2, "libclient", "tab:orange")):
        mid = [a[lib]["p50_us"] for a in aggs]
        err = [[m - a[lib]["p50_min"] for m, a in zip(mid, aggs, strict=True)],
               [a[lib]["p50_max"] - m for m, a in zip(mid, aggs, strict=True)]]
        ax.barh([y + offset for y in range(len(labels))], mid, height, xerr=err, label=lib,
                color=color)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(list(range(len(labels))), labels)
    ax.invert_yaxis()
    ax.set_xlabel("p50 latency per op, µs (log; whiskers: min-max over reps)")
    ax.legend()


# -- writing ----------------------------------------------------------------------------------


def write(results: Row, out_dir: Path, prefix: str) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{prefix}.json", "markdown": out_dir / f"{prefix}.md"}
    paths["json"].write_text(json.dumps(results, indent=1, default=str))
    png = chart(results, out_dir / f"{prefix}.png")
    text = markdown(results)
    if png is not None:
        text = text.replace("\n## Results per cell\n", f"\n![chart]({png.name})\n\n"
                            "## Results per cell\n", 1)
        paths["chart"] = png
    paths["markdown"].write_text(text)
    return paths


def main() -> int:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parent / "results" / "results.json")
    results = json.loads(source.read_text())
    paths = write(results, source.parent, source.stem)
    print(paths["markdown"].read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
