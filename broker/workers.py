"""What the broker knows about each connected worker: its liveness, its in-flight count, and the
transactions and cursors it owns (pinned to the node connection that created them).

A *worker* is one stub socket: one ZeroMQ routing id, or one Unix stream connection (its own
session, released as soon as it closes).  ZeroMQ stubs that set their routing id to
``session (16 bytes) + suffix`` group their sockets into one *session*: traffic on any socket
of a session keeps all of them alive (so a stub's heartbeat thread vouches for its other
threads).  When a session goes quiet for longer than the liveness bound, the janitor releases
everything its workers own.  Each worker's connect and disconnect is logged here, where its
peer and label are known.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from protocol.ipc import SESSION_BYTES

from . import log
from .errors import Overloaded
from .nodeconn import NodeConnection

T = TypeVar("T", bound="Transaction | Cursor")

_log = log.get("workers")

#: Every handle this broker run gives (transactions, cursors, subscriptions) is ``RUN``, a
#: random number drawn at start, over a serial of ``_SERIAL_BITS``.  A ZeroMQ stub's socket
#: reconnects to the next broker by itself, so a handle of an earlier run can arrive: it is told
#: apart from one never given (``of_another_run``), and it never names another transaction.
_SERIAL_BITS = 40
_RUN_BITS = 15
RUN = secrets.randbelow((1 << _RUN_BITS) - 1) + 1


def of_another_run(handle: int) -> bool:
    """Whether ``handle`` has the shape of a broker handle, with another run's mark."""
    run = handle >> _SERIAL_BITS
    return 0 < run < (1 << _RUN_BITS) and run != RUN

#: Identities of stream workers start with a zero byte, so each connection is its own session
#: (libzmq's own routing ids are 5 bytes).
STREAM_IDENTITY_PREFIX = b"\x00stream"


@dataclass(slots=True)
class Transaction:
    handle: int
    conn: NodeConnection
    tx_id: int
    label: str | None


@dataclass(slots=True)
class Cursor:
    handle: int
    conn: NodeConnection
    cursor_id: int
    kind: str  # "sql", "scan" or "sql_row"
    column_count: int = 0


class Pinned(dict[int, T]):
    """One worker's transactions or cursors by handle.  Every change also updates ``held``
    (node connection -> how many of these it holds for all workers), so the per-connection
    counts stay right whoever adds or drops an entry; ``opening`` counts those requested and
    not yet answered, which count against both the worker's cap and the connection."""

    __slots__ = ("held", "opening")

    def __init__(self, held: dict[NodeConnection, int] | None = None) -> None:
        super().__init__()
        self.held: dict[NodeConnection, int] = {} if held is None else held
        self.opening = 0

    def __setitem__(self, handle: int, item: T) -> None:
        old = self.get(handle)
        if old is not None:
            self._drop(old.conn)
        super().__setitem__(handle, item)
        self.held[item.conn] = self.held.get(item.conn, 0) + 1

    def __delitem__(self, handle: int) -> None:
        item = self[handle]
        super().__delitem__(handle)
        self._drop(item.conn)

    def pop(self, handle: int, *default: Any) -> Any:
        if handle in self:
            item = super().pop(handle)
            self._drop(item.conn)
            return item
        if default:
            return default[0]
        raise KeyError(handle)

    def clear(self) -> None:
        for item in self.values():
            self._drop(item.conn)
        super().clear()

    def _one_at_a_time(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a Pinned table changes one handle at a time (set, del, pop, clear)")

    popitem = setdefault = update = _one_at_a_time

    @property
    def count(self) -> int:
        """Held and being opened: what the worker's cap applies to."""
        return len(self) + self.opening

    def reserve(self, conn: NodeConnection) -> Callable[[], None]:
        """Count one being opened on ``conn``; the returned function un-counts it (once)."""
        self.opening += 1
        self.held[conn] = self.held.get(conn, 0) + 1
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                self.opening -= 1
                self._drop(conn)

        return release

    def drop_lost(self) -> int:
        """Forget entries whose connection closed (the node released them); how many."""
        lost = [handle for handle, item in self.items() if not item.conn.is_open]
        for handle in lost:
            del self[handle]
        return len(lost)

    def _drop(self, conn: NodeConnection) -> None:
        left = self.held.get(conn, 0) - 1
        if left > 0:
            self.held[conn] = left
        else:
            self.held.pop(conn, None)


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is at the other end of a worker's socket, from the kernel (SO_PEERCRED, or what
    libzmq reports for ipc://); uid and pid are None where nobody says (tcp://)."""

    transport: str  # "unix", "ipc" or "tcp"
    pid: int | None = None
    uid: int | None = None
    process: str | None = None  # /proc/<pid>/comm, at most 15 characters


@dataclass(slots=True)
class Worker:
    identity: bytes
    session: bytes
    in_flight: int = 0
    transactions: Pinned[Transaction] = field(default_factory=Pinned)
    cursors: Pinned[Cursor] = field(default_factory=Pinned)
    peer: Peer | None = None
    label: str | None = None  # set by the stub's hello (protocol.ipc.label_problem)
    account: Any = None  # the metrics series its requests count in (None: to be looked up)
    pid: int | None = None  # a ZeroMQ stub's own pid, from its hello (stream: the kernel's)
    connected_at: float = 0.0  # wall clock, first request
    requests: int = 0
    errors: int = 0  # requests answered with anything but OK

    def __repr__(self) -> str:
        return (f"<Worker {self.identity.hex()} in_flight={self.in_flight} "
                f"tx={len(self.transactions)} cursors={len(self.cursors)}>")

    @property
    def holds_resources(self) -> bool:
        return bool(self.transactions or self.cursors)


def session_of(identity: bytes) -> bytes:
    """The session a routing id belongs to (itself unless it carries a session prefix)."""
    if len(identity) > SESSION_BYTES and identity[0] != 0:
        return identity[:SESSION_BYTES]
    return identity


class Workers:
    """The registry of workers and sessions; no I/O here (the janitor and dispatcher act)."""

    def __init__(self, max_workers: int = 1 << 62) -> None:
        self.max_workers = max_workers
        self._workers: dict[bytes, Worker] = {}
        # node connection -> transactions / cursors it holds (or is opening) for all workers
        self.tx_held: dict[NodeConnection, int] = {}
        self.cursors_held: dict[NodeConnection, int] = {}
        self._last_seen: dict[bytes, float] = {}  # session -> monotonic time
        self._handles = itertools.count((RUN << _SERIAL_BITS) + 1)
        # identity -> its peer, told by the front end before the worker's first request
        self._peers: dict[bytes, Peer] = {}
        # (uid, pid) -> the label one of its workers said in hello: its other sockets (other
        # threads' connections) are counted under it too
        self._labels: dict[tuple[int | None, int], str] = {}
        # stream identity -> its peer, from accept to close (for the disconnect line)
        self._connected: dict[bytes, Peer] = {}

    def __len__(self) -> int:
        return len(self._workers)

    def __iter__(self) -> Iterator[Worker]:
        return iter(list(self._workers.values()))

    def seen(self, identity: bytes, now: float) -> Worker:
        """The worker for ``identity`` (created on first sight), marked alive at ``now``;
        Overloaded for a new one beyond ``max_workers``."""
        worker = self._workers.get(identity)
        if worker is None:
            if len(self._workers) >= self.max_workers:
                raise Overloaded(f"the broker serves {len(self._workers)} workers already "
                                 "(limits.max_workers)")
            peer = self._peers.pop(identity, None)
            worker = self._workers[identity] = Worker(
                identity, session_of(identity), transactions=Pinned(self.tx_held),
                cursors=Pinned(self.cursors_held), peer=peer,
                connected_at=time.time())
            if peer is not None and peer.pid is not None:
                worker.label = self._labels.get((peer.uid, peer.pid))
            if not identity.startswith(STREAM_IDENTITY_PREFIX):  # streams: logged at accept
                _log.info("worker_connected", **self._fields(identity, peer, worker))
        self._last_seen[worker.session] = now
        return worker

    def knows(self, identity: bytes) -> bool:
        return identity in self._workers

    # -- a stopping broker: who it still serves, and what (broker/lifecycle.py's drain) --------

    def unfinished(self) -> set[bytes]:
        """The workers holding an open transaction or awaiting a reply (a tx_start's, maybe):
        a stopping broker lets them finish (``finished``)."""
        return {identity for identity, worker in self._workers.items()
                if worker.transactions or worker.in_flight}

    def finished(self, identity: bytes) -> bool:
        """Whether ``identity`` holds no open transaction and awaits no reply (or is gone)."""
        worker = self._workers.get(identity)
        return worker is None or not (worker.transactions or worker.in_flight)

    def belongs_to_open(self, identity: bytes, args: dict[str, Any]) -> bool:
        """Whether a request (its ``args``) names a transaction or a cursor its worker holds
        open: what a stopping broker still serves (a transaction's reads, writes, queries and
        their cursors' pages, and its commit or rollback)."""
        worker = self._workers.get(identity)
        if worker is None:
            return False
        handle = args.get("tx")
        if type(handle) is int and handle in worker.transactions:
            return True
        handle = args.get("cursor")
        return type(handle) is int and handle in worker.cursors

    def peer_seen(self, identity: bytes, peer: Peer) -> None:
        """The front end learned who is behind ``identity``; its worker record gets it."""
        if len(self._peers) >= self.max_workers:  # identities that never sent a request
            self._peers.clear()
        self._peers[identity] = peer
        if peer.transport == "unix":  # accepted (ZeroMQ: logged at its first request)
            self._connected[identity] = peer
            _log.info("worker_connected", **self._fields(identity, peer, None))

    def set_label(self, worker: Worker, label: str) -> None:
        """The worker said its label: it and its process's other workers carry it."""
        worker.label, worker.account = label, None
        peer = worker.peer
        if peer is None or peer.pid is None:
            return
        self._labels[(peer.uid, peer.pid)] = label
        for other in self._workers.values():
            if (other.peer is not None and other.label is None
                    and (other.peer.uid, other.peer.pid) == (peer.uid, peer.pid)):
                other.label, other.account = label, None

    def forget(self, identity: bytes, reason: str = "killed by admin") -> Worker | None:
        """Drop a worker now (``admin kill-client``); its next request makes a new one."""
        worker = self._workers.pop(identity, None)
        if worker is not None and not identity.startswith(STREAM_IDENTITY_PREFIX):
            _log.info("worker_disconnected", reason=f"{reason} (forgotten: ZeroMQ has no "
                      "connection to close)", **self._fields(identity, worker.peer, worker))
        return worker  # a stream worker's line comes when its connection closes

    def disconnected(self, identity: bytes, reason: str = "closed by the worker") -> None:
        """The worker's connection closed (stream workers): its session is over, so the next
        sweep releases what it owns, once its requests in flight are answered."""
        self._peers.pop(identity, None)
        peer = self._connected.pop(identity, None)
        worker = self._workers.get(identity)
        if worker is not None:
            self._last_seen[worker.session] = float("-inf")
        _log.info("worker_disconnected", reason=reason, **self._fields(identity, peer, worker))

    def _fields(self, identity: bytes, peer: Peer | None, worker: Worker | None) -> dict[str, Any]:
        """Who a worker is, for its connect and disconnect lines: the kernel's pid and uid
        (unix://, ipc://), else the pid its hello gave; the label once a hello said it."""
        pid = peer.pid if peer is not None and peer.pid is not None else (
            worker.pid if worker is not None else None)
        uid = peer.uid if peer is not None else None
        label = worker.label if worker is not None else None
        if label is None and pid is not None:
            label = self._labels.get((uid, pid))
        transport = peer.transport if peer is not None else (
            "unix" if identity.startswith(STREAM_IDENTITY_PREFIX) else None)
        return {"worker": identity.hex(), "transport": transport, "pid": pid, "uid": uid,
                "process": peer.process if peer is not None else None, "label": label}

    def new_handle(self) -> int:
        return next(self._handles)

    def expired(self, now: float, liveness: float, idle_forget: float) -> list[Worker]:
        """Remove and return workers whose session has been silent too long: after
        ``liveness`` seconds when they hold resources, after ``idle_forget`` otherwise."""
        gone = []
        for worker in list(self._workers.values()):
            silent = now - self._last_seen.get(worker.session, now)
            limit = liveness if worker.holds_resources else idle_forget
            if silent > limit and worker.in_flight == 0:
                gone.append(self._workers.pop(worker.identity))
                if not worker.identity.startswith(STREAM_IDENTITY_PREFIX):
                    _log.info("worker_disconnected", reason=f"silent for {silent:.0f}s: "
                              "forgotten (ZeroMQ does not tell when a peer goes)",
                              **self._fields(worker.identity, worker.peer, worker))
        live_sessions = {w.session for w in self._workers.values()}
        for session in list(self._last_seen):
            if session not in live_sessions:
                del self._last_seen[session]
        if gone and self._labels:
            live = {(w.peer.uid, w.peer.pid) for w in self._workers.values() if w.peer}
            for process in [p for p in self._labels if p not in live]:
                del self._labels[process]
        return gone

