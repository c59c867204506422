"""Owns the `dev-cluster start|stop|status` command line (argparse wiring and text output)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from broker.devcluster.cluster import (
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    DevCluster,
    stop_clusters,
)
from broker.devcluster.errors import DevClusterError
from broker.devcluster.state import ClusterRecord, NodeRecord, list_records, rss_kib, state_root

_DESCRIPTION = """\
Run local Apache Ignite server nodes (real JVMs, jars fetched with Maven) on 127.0.0.1.
Node <i> of the cluster on base port B listens on: thin client B+i, discovery B+10000+i,
communication B+11000+i. Clusters on base ports at least N apart can run side by side.
State, logs and work dirs live in $IGNITE_BROKER_DEVCLUSTER_DIR (default
/tmp/ignite-broker-devcluster)/<base port>; jars in $IGNITE_BROKER_CACHE (default
~/.cache/ignite-broker). Extra JVM options: $IGNITE_BROKER_JVM_OPTS.
"""


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register `dev-cluster` with its start/stop/status subcommands on subparsers."""
    parser = subparsers.add_parser(
        "dev-cluster",
        help="start/stop/status of local Ignite dev nodes",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_commands(parser)
    parser.set_defaults(func=run)
    return parser


def add_commands(parser: argparse.ArgumentParser) -> None:
    """Add the start/stop/status subcommands to parser."""
    commands = parser.add_subparsers(dest="dev_cluster_command", metavar="COMMAND", required=True)
    start = commands.add_parser("start", help="start N nodes forming one cluster")
    start.add_argument("--nodes", type=int, default=1, help="server nodes (default 1)")
    start.add_argument("--base-port", type=int, default=10800, help="first thin-client port")
    start.add_argument("--ssl", action="store_true", help="TLS with client certs on thin ports")
    start.add_argument("--auth", action="store_true", help="authentication (user ignite/ignite)")
    start.add_argument("--tx-aware-queries", action="store_true",
                       help="SQL and scan queries join transactions (Calcite SQL engine)")
    start.add_argument("--timeout", type=float, default=START_TIMEOUT_S, help="start timeout, s")
    stop = commands.add_parser("stop", help="stop dev clusters and delete their files")
    stop.add_argument("--base-port", type=int, help="only this cluster (default: all)")
    stop.add_argument("--timeout", type=float, default=STOP_TIMEOUT_S,
                      help="seconds between SIGTERM and SIGKILL")
    status = commands.add_parser("status", help="show running dev clusters")
    status.add_argument("--base-port", type=int, help="only this cluster (default: all)")
    status.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    """Execute a parsed dev-cluster command; return the process exit code."""
    handlers = {"start": _run_start, "stop": _run_stop, "status": _run_status}
    try:
        return handlers[args.dev_cluster_command](args)
    except (DevClusterError, ValueError) as exc:
        print(f"dev-cluster: error: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m broker.devcluster`."""
    parser = argparse.ArgumentParser(
        prog="python -m broker.devcluster",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_commands(parser)
    return run(parser.parse_args(argv))


def _run_start(args: argparse.Namespace) -> int:
    cluster = DevCluster(
        args.nodes, args.base_port, ssl=args.ssl, auth=args.auth,
        tx_aware_queries=args.tx_aware_queries, start_timeout=args.timeout,
    )
    cluster.start()
    print(_describe_started(cluster))
    return 0


def _run_stop(args: argparse.Namespace) -> int:
    began = time.monotonic()
    stopped = stop_clusters(args.base_port, timeout=args.timeout)
    if not stopped:
        where = f"on base port {args.base_port}" if args.base_port else f"in {state_root()}"
        print(f"no dev cluster recorded {where}")
        return 0
    elapsed = time.monotonic() - began
    for record in stopped:
        pids = ", ".join(str(node.pid) for node in record.nodes)
        print(f"stopped dev cluster on base port {record.base_port} (pids {pids}) "
              f"and removed {record.directory}")
    print(f"stop took {elapsed:.1f} s")
    return 0


def _run_status(args: argparse.Namespace) -> int:
    records = [r for r in list_records() if args.base_port in (None, r.base_port)]
    if args.json:
        print(json.dumps([_status_json(record) for record in records], indent=2))
        return 0
    if not records:
        print(f"no dev cluster recorded in {state_root()}")
        return 0
    print("\n".join(_describe_record(record) for record in records))
    return 0


def _describe_started(cluster: DevCluster) -> str:
    record = cluster.record
    lines = [
        f"dev cluster on base port {cluster.base_port} is up: Apache Ignite "
        f"{record.ignite_version}, {cluster.nodes} node(s), started in "
        f"{cluster.start_seconds or 0:.1f} s",
        "thin-client addresses: " + " ".join(f"{h}:{p}" for h, p in cluster.addresses),
    ]
    files = cluster.ssl_files
    if files is not None:
        lines += [
            f"TLS CA certificate:   {files.ca}",
            f"TLS client cert:      {files.client_cert}",
            f"TLS client key:       {files.client_key}",
            f"TLS client key (enc): {files.client_key_encrypted} "
            f"(password {files.client_key_password})",
        ]
    if cluster.credentials:
        user, password = cluster.credentials
        lines.append(f"authentication: user {user} password {password}")
    lines.append(f"logs: {cluster.directory}/node-<i>.log")
    lines.append(f"stop with: ignite-broker dev-cluster stop --base-port {cluster.base_port}")
    return "\n".join(lines)


def _describe_record(record: ClusterRecord) -> str:
    alive = sum(node.alive() for node in record.nodes)
    flags = ", ".join(f for f, on in (("ssl", record.ssl), ("auth", record.auth),
                                      ("tx-aware queries", record.tx_aware_queries)) if on)
    header = (
        f"base port {record.base_port}: Apache Ignite {record.ignite_version}, "
        f"{alive}/{len(record.nodes)} node(s) running{', ' + flags if flags else ''}, "
        f"dir {record.directory}"
    )
    return "\n".join([header, *(_describe_node(node) for node in record.nodes)])


def _describe_node(node: NodeRecord) -> str:
    alive = node.alive()
    rss = rss_kib(node.pid) if alive and node.pid else None
    memory = f"  rss {rss // 1024} MiB" if rss else ""
    return (
        f"  node-{node.idx}  pid {node.pid}  {'running' if alive else 'DEAD'}  "
        f"client 127.0.0.1:{node.ports.client}  discovery {node.ports.discovery}  "
        f"communication {node.ports.communication}{memory}"
    )


def _status_json(record: ClusterRecord) -> dict[str, object]:
    return {
        "base_port": record.base_port,
        "ignite_version": record.ignite_version,
        "ssl": record.ssl,
        "auth": record.auth,
        "tx_aware_queries": record.tx_aware_queries,
        "directory": str(record.directory),
        "ssl_files": record.ssl_files.to_json() if record.ssl_files else None,
        "nodes": [
            {
                "idx": node.idx,
                "pid": node.pid,
                "alive": node.alive(),
                "client_port": node.ports.client,
                "discovery_port": node.ports.discovery,
                "communication_port": node.ports.communication,
                "rss_kib": rss_kib(node.pid) if node.pid and node.alive() else None,
            }
            for node in record.nodes
        ],
    }
