"""Owns the dev-cluster lifecycle: launching node JVMs, waiting until ready, stopping them."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from ssl import SSLContext
from types import TracebackType

from broker.devcluster import probe
from broker.devcluster.certs import SslFiles, make_certs
from broker.devcluster.errors import DevClusterError, NodeStartError, PortInUseError
from broker.devcluster.maven import (
    LAUNCHER_CLASS,
    IgniteRuntime,
    java_executable,
    prepare_runtime,
)
from broker.devcluster.state import (
    HOST,
    ClusterRecord,
    NodeRecord,
    cluster_dir,
    list_records,
    load_record,
    node_ports,
    validate_layout,
)

AUTH_USER = "ignite"
AUTH_PASSWORD = "ignite"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
JVM_OPTS_ENV = "IGNITE_BROKER_JVM_OPTS"
_KILL_WAIT_S = 10.0
_POLL_S = 0.1
_LOG_TAIL_LINES = 25
_FATAL_SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)

Notify = Callable[[str], None]


class DevCluster:
    """N Ignite server nodes on 127.0.0.1 forming one cluster, each in its own detached JVM.

    `start()` returns once every node reported the full topology and answered a thin-client
    handshake. Use as a context manager to stop (and clean up) on exit.
    """

    def __init__(
        self,
        nodes: int = 1,
        base_port: int = 10800,
        *,
        ssl: bool = False,
        auth: bool = False,
        tx_aware_queries: bool = False,
        root: Path | None = None,
        start_timeout: float = START_TIMEOUT_S,
        notify: Notify | None = None,
    ) -> None:
        validate_layout(nodes, base_port)
        self.nodes = nodes
        self.base_port = base_port
        self.ssl = ssl
        self.auth = auth
        self.tx_aware_queries = tx_aware_queries
        self.root = root
        self.start_timeout = start_timeout
        self.start_seconds: float | None = None
        self._notify = notify
        self._record: ClusterRecord | None = None
        self._runtime: IgniteRuntime | None = None
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._log_offsets: dict[int, int] = {}

    @classmethod
    def attach(cls, base_port: int, root: Path | None = None) -> DevCluster:
        """A handle on a cluster started elsewhere (e.g. by the CLI), found by its base port."""
        record = load_record(cluster_dir(base_port, root))
        if record is None:
            raise DevClusterError(f"no dev cluster recorded for base port {base_port}")
        cluster = cls(len(record.nodes), base_port, ssl=record.ssl, auth=record.auth,
                      tx_aware_queries=record.tx_aware_queries, root=root)
        cluster._record = record
        return cluster

    # -- public view -------------------------------------------------------------------------

    @property
    def record(self) -> ClusterRecord:
        if self._record is None:
            raise DevClusterError(f"dev cluster on base port {self.base_port} is not started")
        return self._record

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, thin-client port) of every node, by index."""
        return [(HOST, node_ports(self.base_port, idx).client) for idx in range(self.nodes)]

    @property
    def ssl_files(self) -> SslFiles | None:
        return self.record.ssl_files

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(user, password) when the cluster runs with authentication."""
        return (AUTH_USER, AUTH_PASSWORD) if self.auth else None

    @property
    def ignite_version(self) -> str:
        return self.record.ignite_version

    @property
    def pids(self) -> list[int | None]:
        return [node.pid for node in self.record.nodes]

    @property
    def directory(self) -> Path:
        return cluster_dir(self.base_port, self.root)

    def client_ssl_context(self) -> SSLContext | None:
        """A client TLS context (CA-verified, client cert) for this cluster, None without --ssl."""
        files = self.ssl_files
        if files is None:
            return None
        return probe.client_ssl_context(
            str(files.ca), str(files.client_cert), str(files.client_key)
        )

    def handshake(self, idx: int, timeout: float = 5.0) -> probe.HandshakeResult:
        """One thin-client handshake against node idx, with this cluster's TLS and credentials."""
        user, password = self.credentials or (None, None)
        host, port = self.addresses[idx]
        return probe.handshake(
            host, port, ssl_context=self.client_ssl_context(),
            username=user, password=password, timeout=timeout,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> DevCluster:
        """Start all nodes (node 0 first) and return when the topology is complete.

        Calling it again on a started cluster does nothing (so `with DevCluster() as c:
        c.start()` is fine).
        """
        if self._record is not None:
            return self
        began = time.monotonic()
        _claim_directory(self.directory, self.base_port)
        ensure_ports_free(self.base_port, range(self.nodes))
        self._runtime = prepare_runtime(self._notify, calcite=self.tx_aware_queries)
        self._record = self._new_record()
        try:
            self._launch_all(time.monotonic() + self.start_timeout)
        except BaseException as exc:
            tails = self._log_tails()
            self._teardown()
            if isinstance(exc, DevClusterError | OSError):
                raise NodeStartError(f"{exc}\n{tails}") from exc
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop every node (SIGTERM, SIGKILL after timeout) and delete the cluster's directory."""
        if self._record is None:
            return
        self._teardown(timeout)

    def kill_node(self, idx: int, sig: int = signal.SIGKILL, *, wait: bool | None = None) -> None:
        """Send sig to node idx; with wait, return once its JVM has exited.

        wait defaults to True for SIGKILL/SIGTERM/SIGINT and False otherwise, so
        `kill_node(i, signal.SIGSTOP)` freezes a node and `kill_node(i, signal.SIGCONT)` thaws it.
        """
        node = self.record.nodes[idx]
        if not node.alive():
            raise DevClusterError(f"node-{idx} is not running")
        assert node.pid is not None
        os.kill(node.pid, sig)
        if wait is None:
            wait = sig in _FATAL_SIGNALS
        if wait and _wait_dead([node], STOP_TIMEOUT_S + _KILL_WAIT_S):
            raise DevClusterError(f"node-{idx} (pid {node.pid}) still runs after signal {sig}")
        self._reap()

    def start_node(self, idx: int, timeout: float | None = None) -> None:
        """(Re)start node idx and wait until it has joined the nodes that are still running."""
        node = self.record.nodes[idx]
        if node.alive():
            raise DevClusterError(f"node-{idx} already runs (pid {node.pid})")
        ensure_ports_free(self.base_port, [idx], wait=_KILL_WAIT_S)
        if self._runtime is None:
            self._runtime = prepare_runtime(self._notify, calcite=self.tx_aware_queries)
        expected = 1 + sum(other.alive() for other in self.record.nodes if other.idx != idx)
        deadline = time.monotonic() + (timeout or self.start_timeout)
        self._reap()
        self._spawn(idx, expected)
        self._await_marker(idx, "IGNITE_READY", deadline)
        self._await_handshake(idx, deadline)

    def await_rebalanced(self, idx: int, timeout: float | None = None) -> None:
        """Wait until node idx, (re)started by this object, says the cluster is rebalanced
        (``IGNITE_REBALANCED`` since its latest start): only then does a node that joined hold
        its copies, and may another node be stopped without losing data (one backup)."""
        deadline = time.monotonic() + (timeout or self.start_timeout)
        self._await_marker(idx, "IGNITE_REBALANCED", deadline)

    def __enter__(self) -> DevCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._record is None else f"pids={self.pids}"
        flags = "".join((" ssl" if self.ssl else "", " auth" if self.auth else "",
                         " tx_aware_queries" if self.tx_aware_queries else ""))
        return f"<DevCluster base_port={self.base_port} nodes={self.nodes}{flags} {state}>"

    # -- internals ---------------------------------------------------------------------------

    def _new_record(self) -> ClusterRecord:
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        ssl_files = make_certs(directory / "certs") if self.ssl else None
        assert self._runtime is not None
        record = ClusterRecord(
            base_port=self.base_port,
            nodes=[
                NodeRecord(
                    idx=idx,
                    ports=node_ports(self.base_port, idx),
                    work_dir=directory / "work" / f"node-{idx}",
                    log=directory / f"node-{idx}.log",
                )
                for idx in range(self.nodes)
            ],
            ssl=self.ssl,
            auth=self.auth,
            tx_aware_queries=self.tx_aware_queries,
            ignite_version=self._runtime.version,
            directory=directory,
            ssl_files=ssl_files,
            started_at=time.time(),
        )
        record.save()
        return record

    def _launch_all(self, deadline: float) -> None:
        """Node 0 forms the ring first; the others then join it together (note section 6)."""
        self._spawn(0, self.nodes)
        self._await_marker(0, "IGNITE_STARTED", deadline)
        for idx in range(1, self.nodes):
            self._spawn(idx, self.nodes)
        for idx in range(self.nodes):
            self._await_marker(idx, "IGNITE_READY", deadline)
        for idx in range(self.nodes):
            self._await_handshake(idx, deadline)

    def _spawn(self, idx: int, expected: int) -> None:
        node = self.record.nodes[idx]
        node.work_dir.mkdir(parents=True, exist_ok=True)
        self._log_offsets[idx] = node.log.stat().st_size if node.log.exists() else 0
        with node.log.open("ab") as log:
            proc = subprocess.Popen(
                self._node_command(node, expected),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=node.work_dir,
                start_new_session=True,
            )
        self._procs[idx] = proc
        node.pid = proc.pid
        self.record.save()

    def _node_command(self, node: NodeRecord, expected: int) -> list[str]:
        assert self._runtime is not None
        cmd = [
            java_executable(),
            f"@{self._runtime.jvm_argfile}",
            *shlex.split(os.environ.get(JVM_OPTS_ENV, "")),
            "-cp", self._runtime.classpath,
            LAUNCHER_CLASS,
            "--idx", str(node.idx),
            "--nodes", str(expected),
            "--client-port", str(node.ports.client),
            "--discovery-port", str(node.ports.discovery),
            "--comm-port", str(node.ports.communication),
            "--work-dir", str(node.work_dir),
        ]
        files = self.record.ssl_files
        if files is not None:
            cmd += [
                "--ssl-keystore", str(files.server_keystore),
                "--ssl-truststore", str(files.truststore),
                "--ssl-password", files.store_password,
            ]
        if self.auth:
            cmd.append("--auth")
        if self.tx_aware_queries:
            cmd.append("--tx-aware-queries")
        return cmd

    def _await_marker(self, idx: int, marker: str, deadline: float) -> None:
        """Wait for `<marker> idx=<idx>` in the node's log, written after its latest spawn."""
        node = self.record.nodes[idx]
        needle = f"{marker} idx={idx} ".encode()
        while True:
            with node.log.open("rb") as log:
                log.seek(self._log_offsets.get(idx, 0))
                if needle in log.read():
                    return
            returncode = self._procs[idx].poll()
            if returncode is not None:
                raise NodeStartError(f"node-{idx} exited with code {returncode} before {marker}")
            if time.monotonic() > deadline:
                raise NodeStartError(f"node-{idx}: no {marker} line within the start timeout")
            time.sleep(_POLL_S)

    def _await_handshake(self, idx: int, deadline: float) -> None:
        """Retry a full handshake on node idx until it is accepted or the deadline passes."""
        while True:
            try:
                result = self.handshake(idx)
            except DevClusterError as exc:
                if time.monotonic() > deadline:
                    raise NodeStartError(f"node-{idx}: {exc}") from exc
            else:
                if result.accepted:
                    return
                raise NodeStartError(f"node-{idx} rejected the handshake: {result}")
            time.sleep(_POLL_S)

    def _teardown(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if self._record is not None:
            terminate_nodes(self._record.nodes, timeout)
        self._reap()
        shutil.rmtree(self.directory, ignore_errors=True)
        self._record = None
        self._procs.clear()
        self._log_offsets.clear()

    def _reap(self) -> None:
        """Collect exited children so they do not linger as zombies."""
        for proc in self._procs.values():
            proc.poll()

    def _log_tails(self) -> str:
        if self._record is None:
            return ""
        return "\n".join(log_tail(node.log) for node in self._record.nodes if node.log.exists())


def ensure_ports_free(base_port: int, indices: Iterable[int], wait: float = 0.0) -> None:
    """Raise PortInUseError naming every port of the given nodes that something listens on.

    ``wait`` polls that long first: a JVM that was just killed reads as dead in /proc (its
    memory is gone) a moment before the kernel has closed its sockets.
    """
    indices = list(indices)
    deadline = time.monotonic() + wait
    while not _ports_free(base_port, indices) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    busy = []
    for idx in indices:
        ports = node_ports(base_port, idx)
        for kind, port in (("thin-client", ports.client), ("discovery", ports.discovery),
                           ("communication", ports.communication)):
            if not probe.port_is_free(port):
                busy.append(f"{kind} port {port} (node-{idx})")
    if busy:
        raise PortInUseError(
            f"cannot start the dev cluster on base port {base_port}: already in use: "
            + ", ".join(busy)
        )


def _ports_free(base_port: int, indices: list[int]) -> bool:
    ports = [node_ports(base_port, idx) for idx in indices]
    return all(
        probe.port_is_free(port)
        for p in ports
        for port in (p.client, p.discovery, p.communication)
    )


def terminate_nodes(nodes: Iterable[NodeRecord], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every live node, SIGKILL those still alive after timeout, wait for all to exit."""
    live = [node for node in nodes if node.alive()]
    _signal_all(live, signal.SIGTERM)
    _signal_all(live, signal.SIGCONT)  # a node frozen with SIGSTOP must run to handle SIGTERM
    survivors = _wait_dead(live, timeout)
    if survivors:
        _signal_all(survivors, signal.SIGKILL)
        survivors = _wait_dead(survivors, _KILL_WAIT_S)
    if survivors:
        pids = ", ".join(str(node.pid) for node in survivors)
        raise DevClusterError(f"dev-cluster nodes survived SIGKILL: pids {pids}")


def stop_clusters(
    base_port: int | None = None, root: Path | None = None, timeout: float = STOP_TIMEOUT_S
) -> list[ClusterRecord]:
    """Stop the recorded clusters (all, or the one on base_port) and delete their directories."""
    records = [r for r in list_records(root) if base_port in (None, r.base_port)]
    for record in records:
        terminate_nodes(record.nodes, timeout)
        shutil.rmtree(record.directory, ignore_errors=True)
    if base_port is not None:
        shutil.rmtree(cluster_dir(base_port, root), ignore_errors=True)
    return records


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last lines of a node log, framed with its path."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError as exc:
        return f"--- {path}: unreadable ({exc})"
    return "\n".join([f"--- last {len(text)} lines of {path}:", *text])


def _claim_directory(directory: Path, base_port: int) -> None:
    """Refuse when a live cluster owns directory; clear what a dead one left behind."""
    record = load_record(directory)
    if record is not None and any(node.alive() for node in record.nodes):
        raise DevClusterError(
            f"a dev cluster already runs on base port {base_port} "
            f"(pids {[n.pid for n in record.nodes if n.alive()]}); stop it first"
        )
    shutil.rmtree(directory, ignore_errors=True)


def _signal_all(nodes: Iterable[NodeRecord], sig: int) -> None:
    for node in nodes:
        if node.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, sig)


def _wait_dead(nodes: list[NodeRecord], timeout: float) -> list[NodeRecord]:
    """Poll until every node has exited or timeout passes; return the ones still alive."""
    deadline = time.monotonic() + timeout
    alive = [node for node in nodes if not _exited(node)]
    while alive and time.monotonic() < deadline:
        time.sleep(_POLL_S)
        alive = [node for node in alive if not _exited(node)]
    return alive


def _exited(node: NodeRecord) -> bool:
    """True once the node's process has fully exited (its sockets are closed): gone from /proc,
    or a zombie, which is reaped when it is our child.  A process in the middle of exiting
    already reads as not alive (its cmdline is empty) while it still holds its ports."""
    if node.alive():
        return False
    if node.pid is None:
        return True
    try:
        with open(f"/proc/{node.pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    if state in (b"Z", b"X"):
        # A zombie leader may still have live threads (the JVM's main thread exits first).
        return _reap_pid(node.pid) or _only_leader_left(node.pid)
    return False


def _only_leader_left(pid: int) -> bool:
    try:
        return len(os.listdir(f"/proc/{pid}/task")) <= 1
    except OSError:
        return True


def _reap_pid(pid: int) -> bool:
    """Collect pid if it is an exited child of this process (e.g. nodes the CLI started here);
    True when it was collected."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except (ChildProcessError, OSError):
        return False
