"""Owns the on-disk record of running dev clusters (state.json per base port) and the port rule.

Layout: <state root>/<base port>/{state.json, node-<i>.log, work/node-<i>/, certs/}.
State root: $IGNITE_BROKER_DEVCLUSTER_DIR or /tmp/ignite-broker-devcluster.

Port rule for node <idx> of the cluster on <base> (documented in the CLI help too):
  thin client   = base + idx           (10800, 10801, ...)
  discovery     = base + 10000 + idx   (20800, 20801, ...)
  communication = base + 11000 + idx   (21800, 21801, ...)
The derived ports stay below Linux's ephemeral range (32768+) for bases up to 21700, and away
from Ignite's defaults (47500/47100), so a stray default-configured node never joins a dev cluster.
Clusters on bases at least `nodes` apart (e.g. 10800, 10810, ...) never share a port.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from broker.devcluster.certs import SslFiles

HOST = "127.0.0.1"
DISCOVERY_OFFSET = 10_000
COMMUNICATION_OFFSET = 11_000
MAX_NODES = 10
STATE_FILE = "state.json"
LAUNCHER_MARK = b"IgniteDevNode"


@dataclass(frozen=True)
class NodePorts:
    """The three pinned ports of one node."""

    client: int
    discovery: int
    communication: int


def node_ports(base_port: int, idx: int) -> NodePorts:
    """Ports of node idx in the cluster on base_port (see the module docstring)."""
    return NodePorts(
        client=base_port + idx,
        discovery=base_port + DISCOVERY_OFFSET + idx,
        communication=base_port + COMMUNICATION_OFFSET + idx,
    )


def validate_layout(nodes: int, base_port: int) -> None:
    """Raise ValueError when nodes or base_port cannot give valid, distinct ports."""
    if not 1 <= nodes <= MAX_NODES:
        raise ValueError(f"nodes must be between 1 and {MAX_NODES}, got {nodes}")
    highest = base_port + COMMUNICATION_OFFSET + nodes - 1
    if base_port < 1024 or highest > 65535:
        raise ValueError(f"base port {base_port} gives ports outside 1024..65535")


def state_root() -> Path:
    """$IGNITE_BROKER_DEVCLUSTER_DIR or /tmp/ignite-broker-devcluster."""
    return Path(os.environ.get("IGNITE_BROKER_DEVCLUSTER_DIR", "/tmp/ignite-broker-devcluster"))


def cluster_dir(base_port: int, root: Path | None = None) -> Path:
    return (root or state_root()) / str(base_port)


@dataclass
class NodeRecord:
    """One node as recorded in state.json."""

    idx: int
    ports: NodePorts
    work_dir: Path
    log: Path
    pid: int | None = None

    def alive(self) -> bool:
        """True when the recorded pid is a live (non-zombie) launcher for this node's port."""
        return self.pid is not None and launcher_alive(self.pid, self.ports.client)


@dataclass
class ClusterRecord:
    """One dev cluster as recorded in state.json."""

    base_port: int
    nodes: list[NodeRecord]
    ssl: bool
    auth: bool
    ignite_version: str
    directory: Path
    ssl_files: SslFiles | None = None
    started_at: float = 0.0
    tx_aware_queries: bool = False

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(HOST, node.ports.client) for node in self.nodes]

    def save(self) -> None:
        path = self.directory / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(_record_to_json(self), indent=2) + "\n")
        tmp.replace(path)


def load_record(directory: Path) -> ClusterRecord | None:
    """The record in directory, or None when there is none or it cannot be read."""
    try:
        data = json.loads((directory / STATE_FILE).read_text())
        return _record_from_json(data, directory)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def list_records(root: Path | None = None) -> list[ClusterRecord]:
    """All readable cluster records under the state root, by base port."""
    root = root or state_root()
    if not root.is_dir():
        return []
    records = (load_record(path) for path in sorted(root.iterdir()) if path.name.isdigit())
    return sorted((r for r in records if r is not None), key=lambda r: r.base_port)


def launcher_alive(pid: int, client_port: int) -> bool:
    """True when pid runs (not a zombie) and is our launcher serving client_port.

    Checking the command line guards against signalling a recycled pid.
    """
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    return LAUNCHER_MARK in cmdline and f"--client-port\0{client_port}\0".encode() in cmdline


def rss_kib(pid: int) -> int | None:
    """VmRSS of pid in KiB from /proc, or None when unavailable."""
    try:
        for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _record_to_json(record: ClusterRecord) -> dict[str, object]:
    return {
        "base_port": record.base_port,
        "ssl": record.ssl,
        "auth": record.auth,
        "tx_aware_queries": record.tx_aware_queries,
        "ignite_version": record.ignite_version,
        "started_at": record.started_at,
        "ssl_files": record.ssl_files.to_json() if record.ssl_files else None,
        "nodes": [
            {**asdict(node), "work_dir": str(node.work_dir), "log": str(node.log)}
            for node in record.nodes
        ],
    }


def _record_from_json(data: dict[str, Any], directory: Path) -> ClusterRecord:
    nodes = [
        NodeRecord(
            idx=n["idx"],
            ports=NodePorts(**n["ports"]),
            work_dir=Path(n["work_dir"]),
            log=Path(n["log"]),
            pid=n["pid"],
        )
        for n in data["nodes"]
    ]
    ssl_files = SslFiles.from_json(data["ssl_files"]) if data.get("ssl_files") else None
    return ClusterRecord(
        base_port=data["base_port"],
        nodes=nodes,
        ssl=data["ssl"],
        auth=data["auth"],
        ignite_version=data["ignite_version"],
        directory=directory,
        ssl_files=ssl_files,
        started_at=data.get("started_at", 0.0),
        tx_aware_queries=data.get("tx_aware_queries", False),
    )
