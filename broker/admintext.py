"""How ``ignite-broker admin`` shows an answer to a person: tables for rows, aligned
``key  value`` lines for records, a sentence for actions (``--json`` prints the answer as is)."""

from __future__ import annotations

from typing import Any


def table(rows: list[dict[str, Any]]) -> str:
    """Rows as columns, headed by their keys (the first row's order)."""
    if not rows:
        return "(none)"
    keys = list(rows[0])
    cells = [[_cell(row.get(k)) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.upper().ljust(w) for k, w in zip(keys, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def record(values: dict[str, Any]) -> str:
    width = max((len(k) for k in values), default=0)
    return "\n".join(f"{k.ljust(width)}  {_cell(v)}" for k, v in values.items())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    return str(value)


def _status(result: dict[str, Any]) -> str:
    age = result.get("config_age_s")
    config = result.get("config_file") or "(none: defaults and options)"
    if age is not None:
        config += f" (changed {_duration(age)} ago)"
    rate = result.get("requests_per_s")
    head = {
        "broker": f"{result['version']} pid {result['pid']} up {_duration(result['uptime_s'])}"
                  + ("  PAUSED" if result.get("paused") else ""),
        "config": config,
        "nodes": f"{result['nodes_ready']} of {len(result['nodes'])} ready",
        "workers": f"{result['workers']}, {result['in_flight']} requests in flight, "
                   f"{result['parked']} held",
        "requests": f"{result['requests']} "
                    + (f"({rate}/s over {result['window_s']}s)" if rate is not None
                       else "(rate: ask again)"),
        "p99": f"{result['p99_ms']} ms" if result.get("p99_ms") is not None else "-",
        "errors": f"{result['errors']} answered with an error, "
                  f"{result['internal_errors']} internal",
    }
    return record(head) + "\n\n" + table(result["nodes"])


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d"


def _reload(result: dict[str, Any]) -> str:
    lines = ["reloaded: " + (", ".join(result["applied"]) or "no setting changed")]
    if result.get("restart_needed"):
        lines.append("changed, but need a restart (kept): " + ", ".join(result["restart_needed"]))
    if result.get("reread"):
        lines.append("re-read for new node connections: " + ", ".join(result["reread"]))
    return "\n".join(lines)


def render(command: str, result: Any) -> str:
    verb = command.split()[0]
    if verb == "status":
        return _status(result)
    if verb == "reload":
        return _reload(result)
    if verb == "pause":
        return f"paused: new requests are held within their deadlines ({result['parked']} held)"
    if verb == "resume":
        return f"resumed: {result['released']} held requests released"
    if verb == "drain":
        return f"draining: {result['in_flight']} requests in flight, then the broker exits"
    if verb == "kill-client":
        return "killed: " + ", ".join(result["killed"])
    if isinstance(result, list):
        return table(result)
    if isinstance(result, dict):
        return record(result)
    return str(result)
