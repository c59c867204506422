"""The broker's Prometheus/OpenMetrics metrics: the instruments the request path updates, the
collector that reads the broker's state at scrape time, and the optional HTTP listener
(``[metrics] listen``) that serves them from a thread of its own.

Theory of operation.  Events (a request answered, a node's answer, a refusal, a heartbeat)
change plain numbers on the event loop: a series is looked up once and kept, so the request
path pays a dict lookup and two increments (~0.5 µs a request, bench/metrics_cost.py), where
prometheus_client's own Counter and Histogram, each increment under a lock, cost ~4 µs.
Nothing is read from another thread: when a scrape asks, ``LoopCollector`` runs on the event
loop, turns those numbers and the broker's state (nodes up, in flight, workers, topology)
into prometheus_client metric families, and hands them to the HTTP thread, where
prometheus_client writes the text or OpenMetrics format.  A scrape can therefore not see
half-changed state, and a blocked loop cannot hang a scrape (it gets the last families
read).  The listener is bounded: one request at a time, socket timeouts, and the
exposition is rendered at most once per ``_MIN_RENDER_INTERVAL``, however often it is asked.

Worker attribution: requests and workers are aggregated by the worker's uid (peer
credentials) and its label (``hello``), at most ``max_clients`` such pairs; later pairs are
counted as ``uid="other", label="_other"``.  Pids and process names are not metric labels.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import socketserver
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.utils import floatToGoString

from protocol.ipc import Status

from . import log, native
from .errors import ConfigError
from .sockets import someone_listens

if TYPE_CHECKING:
    from .dispatch import Dispatcher
    from .frontend import Frontend
    from .janitor import Janitor
    from .pool import NodePool
    from .workers import Workers

_log = log.get("metrics")


def _go_float(value: float) -> str:
    """A bucket bound as Prometheus writes it (its own helper, untyped in the library)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


PREFIX = "ignite_broker"
#: Seconds, for broker and node latencies: 100 µs (a local get) to 30 s (the default deadline).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: An op name a worker sent that the broker does not know (it must not become a label value).
UNKNOWN_OP = "unknown"
#: The op of a request refused before its envelope could be read.
NO_OP = "none"
OTHER_UID = "other"
OTHER_LABEL = "_other"
NO_UID = "unknown"  # tcp:// peers, and workers whose credentials could not be read
NO_LABEL = ""
_STATUS_NAMES = {int(s): s.name for s in Status}
#: Scrapes within this many seconds of a render get the same bytes.
_MIN_RENDER_INTERVAL = 1.0
#: Seconds a scrape waits for the event loop to read the broker's state.
_LOOP_TIMEOUT = 2.0
#: Seconds one HTTP connection may take to send its request or read the answer.
_HTTP_TIMEOUT = 5.0


class Count:
    """One counter series, changed on the event loop only."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class Buckets:
    """One histogram series over LATENCY_BUCKETS, changed on the event loop only."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one: above every bound
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # le: bound >= seconds
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        bounds = [*(_go_float(b) for b in LATENCY_BUCKETS), "+Inf"]
        return list(zip(bounds, accumulate(self.counts), strict=True))


class _Family:
    """The series of one metric by label values, created on first use."""

    __slots__ = ("doc", "kind", "labels", "name", "series")

    def __init__(self, kind: type[Count] | type[Buckets], name: str, doc: str,
                 labels: tuple[str, ...]) -> None:
        self.kind, self.name, self.doc, self.labels = kind, f"{PREFIX}_{name}", doc, labels
        self.series: dict[tuple[str, ...], Any] = {}

    def get(self, *values: str) -> Any:
        series = self.series.get(values)
        if series is None:
            series = self.series[values] = self.kind()
        return series

    def family(self) -> Metric:
        labels = list(self.labels)
        if self.kind is Count:
            counter = CounterMetricFamily(self.name, self.doc, labels=labels)
            for values, count in self.series.items():
                counter.add_metric(list(values), count.value)
            return counter
        histogram = HistogramMetricFamily(self.name, self.doc, labels=labels)
        for values, buckets in self.series.items():
            histogram.add_metric(list(values), buckets.cumulative(), buckets.total)
        return histogram


class Metrics:
    """The instruments of one broker.  The request path changes plain numbers on the event
    loop (no locks, no allocation once a series exists); ``families()`` turns them into
    prometheus_client metric families, on the loop too (``watch_broker``)."""

    def __init__(self, *, known_ops: Iterable[str] = (), max_clients: int = 100) -> None:
        self.known_ops = frozenset(known_ops)
        self.max_clients = max_clients
        self.requests = _Family(Count, "requests", "requests answered, by op and status",
                                ("op", "status"))
        self.duration = _Family(
            Buckets, "request_duration_seconds",
            "seconds from reading a request to its reply, in the broker, by op", ("op",))
        self.node_duration = _Family(
            Buckets, "node_request_duration_seconds",
            "seconds from writing a request to a node to its answer, by thin-client op",
            ("op",))
        self.queue_wait = _Family(
            Buckets, "queue_wait_seconds",
            "seconds a request waited in the broker: for any node to be reachable (no_node) "
            "or for room on its node connection (node_bytes)", ("queue",))
        self.refusals = _Family(Count, "refusals",
                                "requests refused before reaching the cluster, by reason",
                                ("reason",))
        self.client_requests = _Family(
            Count, "client_requests",
            "requests by the worker's uid (peer credentials) and label (hello)",
            ("uid", "label"))
        self.heartbeat = _Family(Buckets, "node_heartbeat_seconds",
                                 "heartbeat round trip per node", ("node",))
        self.node_errors = _Family(
            Count, "node_errors",
            "per node: error answers (server_error), connections lost (connection_lost), "
            "failed connects (connect_failed), unanswered heartbeats (heartbeat_timeout)",
            ("node", "kind"))
        self._answered: dict[tuple[str, int], tuple[Count, Buckets]] = {}
        self._node_ops: dict[Any, Buckets] = {}
        self.registry = CollectorRegistry()
        self._direct = _Direct(self.families)
        self.registry.register(self._direct)

    def families(self) -> list[Metric]:
        """Every instrument as a prometheus_client family: call it on the loop's thread."""
        return [f.family() for f in (self.requests, self.duration, self.node_duration,
                                     self.queue_wait, self.refusals, self.client_requests,
                                     self.heartbeat, self.node_errors)]

    # -- the request path -----------------------------------------------------------------------

    def answered(self, op: str, status: int, seconds: float, account: Count | None) -> None:
        """A request was answered ``seconds`` after it was read; ``account`` is the worker's
        client counter (``account()``), or None."""
        pair = self._answered.get((op, status))
        if pair is None:
            pair = self._answered_pair(op, status)
        pair[0].value += 1
        pair[1].observe(seconds)
        if account is not None:
            account.value += 1

    def _answered_pair(self, op: str, status: int) -> tuple[Count, Buckets]:
        name = op if op in self.known_ops or op == NO_OP else UNKNOWN_OP
        pair = (self.requests.get(name, _STATUS_NAMES.get(status, str(status))),
                self.duration.get(name))
        if name == op:  # unknown names share one series, and never get a key each
            self._answered[(op, status)] = pair
        return pair

    def node_answered(self, op: Any, seconds: float) -> None:
        """A node answered a request of thin-client ``op`` (an OpCode) after ``seconds``."""
        buckets = self._node_ops.get(op)
        if buckets is None:
            buckets = self._node_ops[op] = self.node_duration.get(getattr(op, "name", str(op)))
        buckets.observe(seconds)

    def refused(self, reason: str) -> None:
        self.refusals.get(reason).value += 1

    def waited(self, queue: str, seconds: float) -> None:
        self.queue_wait.get(queue).observe(seconds)

    def node_error(self, node: str, kind: str) -> None:
        self.node_errors.get(node, kind).value += 1

    def heartbeat_answered(self, node: str, seconds: float) -> None:
        self.heartbeat.get(node).observe(seconds)

    # -- attribution ----------------------------------------------------------------------------

    def client_key(self, uid: int | None, label: str | None) -> tuple[str, str]:
        """The (uid, label) pair a worker is counted under; ``_other`` beyond max_clients."""
        key = (NO_UID if uid is None else str(uid), label or NO_LABEL)
        series = self.client_requests.series
        if key in series or len(series) < self.max_clients:
            return key
        return (OTHER_UID, OTHER_LABEL)

    def account(self, uid: int | None, label: str | None) -> Count:
        """The counter a worker's requests are counted in."""
        return self.client_requests.get(*self.client_key(uid, label))  # type: ignore[no-any-return]


class _Direct:
    """Collects in the scraping thread: for a Metrics nobody changes meanwhile (tests, tools);
    a running broker collects on its loop instead (``watch_broker``)."""

    def __init__(self, read: Callable[[], list[Metric]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        return iter(self._read())


# -- the broker's state, read at scrape time ------------------------------------------------------

def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))


def node_families(pool: NodePool) -> list[Metric]:
    up = _gauge("node_up", "1 while the broker has a ready connection to the node", ["node"])
    conns = _gauge("node_connections", "ready connections to the node", ["node"])
    in_flight = _gauge("node_in_flight", "requests sent to the node and not answered",
                       ["node"])
    queued = _gauge("node_queued", "requests waiting for room on the node's connections",
                    ["node"])
    by_address: dict[tuple[str, int], list[Any]] = {}
    for conn in pool.ready:
        by_address.setdefault((conn.host, conn.port), []).append(conn)
    for host, port in pool.addresses:
        ready = by_address.get((host, port), [])
        node = [f"{host}:{port}"]
        up.add_metric(node, 1 if ready else 0)
        conns.add_metric(node, len(ready))
        in_flight.add_metric(node, sum(c.in_flight for c in ready))
        queued.add_metric(node, sum(c.queued for c in ready))
    topology = pool.topology
    version = _gauge("topology_version", "the newest affinity topology version a node reported",
                     ["part"])
    latest = topology.latest or (0, 0)
    version.add_metric(["major"], latest[0])
    version.add_metric(["minor"], latest[1])
    stale = _gauge("partition_map_stale", "1 while the partition map is older than the topology")
    stale.add_metric([], 1 if topology.stale else 0)
    refreshes = _counter("partition_map_refreshes", "partition map refreshes")
    refreshes.add_metric([], topology.refreshes)
    lost = _counter("node_connections_lost", "ready node connections that closed")
    lost.add_metric([], pool.connections_lost)
    return [up, conns, in_flight, queued, version, stale, refreshes, lost]


def worker_families(workers: Workers, metrics: Metrics) -> list[Metric]:
    by_transport = _gauge("workers", "workers connected, by transport", ["transport"])
    by_client = _gauge("client_workers", "workers connected, by uid and label",
                       ["uid", "label"])
    transports: dict[str, int] = {"unix": 0, "ipc": 0, "tcp": 0}
    clients: dict[tuple[str, str], int] = {}
    for worker in workers:
        peer = worker.peer
        transport = peer.transport if peer is not None else "unknown"
        transports[transport] = transports.get(transport, 0) + 1
        key = metrics.client_key(peer.uid if peer is not None else None, worker.label)
        clients[key] = clients.get(key, 0) + 1
    for transport, count in transports.items():
        by_transport.add_metric([transport], count)
    for key, count in clients.items():
        by_client.add_metric(list(key), count)
    return [by_transport, by_client]


def broker_families(dispatcher: Dispatcher, frontend: Frontend | None,
                    janitor: Janitor | None) -> list[Metric]:
    in_flight = _gauge("in_flight", "requests in the broker and not answered")
    in_flight.add_metric([], dispatcher.in_flight)
    waiting = _gauge("requests_waiting", "requests waiting in the broker, by queue", ["queue"])
    waiting.add_metric(["no_node"], dispatcher.parked)
    waiting.add_metric(["node_bytes"], sum(c.queued for c in dispatcher.pool.ready))
    types = _gauge("binary_types", "binary types in the broker's registry")
    types.add_metric([], len(dispatcher.types.registry))
    coalesced = _counter("coalesced_reads", "reads answered by an identical read in flight")
    coalesced.add_metric([], dispatcher.coalesced)
    batching = dispatcher.batching_stats()
    batched = _counter("batched_requests", "single-key requests sent to a node inside an "
                       "automatic get_all/put_all batch (limits.batch_requests), by node op",
                       ["op"])
    for op, count in dispatcher.batched_by_op().items():
        batched.add_metric([op], count)
    batches = _counter("request_batches", "automatic batches sent to nodes")
    batches.add_metric([], batching["batches"])
    unbatched = _counter("unbatched_requests", "requests sent again one by one after the "
                         "node refused their batch")
    unbatched.add_metric([], batching["unbatched_requests"])
    internal = _counter("internal_errors", "requests answered INTERNAL (broker bugs)")
    internal.add_metric([], dispatcher.internal_errors
                        + (frontend.internal_errors if frontend is not None else 0))
    compiled = _gauge("compiled_modules", "hot-path modules this broker runs compiled "
                      "(broker/native.py); 0: pure Python")
    compiled.add_metric([], len(native.compiled_modules()))
    families: list[Metric] = [in_flight, waiting, types, coalesced, batched, batches, unbatched,
                              internal, compiled]
    if frontend is not None:
        held = _gauge("held_request_bytes", "request bytes read and not yet answered")
        held.add_metric([], frontend.budget.held)
        dropped = _counter("replies_dropped", "replies whose worker had gone or did not read")
        dropped.add_metric([], frontend.replies_dropped)
        peers = _counter("peers_refused", "connections refused by the access rules "
                         "(allow_uids/allow_gids, CURVE keys), by transport", ["transport"])
        for transport, refusals in frontend.access.refusals.items():
            peers.add_metric([transport], refusals.count)
        families += [held, dropped, peers]
    if janitor is not None:
        released = _counter("released", "transactions rolled back and cursors closed for "
                            "workers that went away", ["kind"])
        released.add_metric(["transaction"], janitor.released_transactions)
        released.add_metric(["cursor"], janitor.released_cursors)
        families.append(released)
    return families


class LoopCollector:
    """A prometheus_client collector whose families ``read()`` builds on the event loop.

    ``collect`` runs in the HTTP thread: it schedules ``read`` on ``loop`` and waits up to
    ``timeout`` seconds; a loop that does not answer in time gets the families read last."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read: Callable[[], list[Metric]],
                 timeout: float = _LOOP_TIMEOUT) -> None:
        self._loop = loop
        self._read = read
        self._timeout = timeout
        self._last: list[Metric] = []

    def collect(self) -> Iterator[Metric]:
        done = threading.Event()
        box: list[list[Metric]] = []

        def run() -> None:
            try:
                box.append(self._read())
            except Exception:  # a scrape must never hurt the loop
                _log.exception("metrics_read_failed")
            finally:
                done.set()

        try:
            self._loop.call_soon_threadsafe(run)
        except RuntimeError:  # the loop is closed: the broker is stopping
            return iter(self._last)
        if done.wait(self._timeout) and box:
            self._last = box[0]
        return iter(self._last)


def watch_broker(metrics: Metrics, loop: asyncio.AbstractEventLoop, *, pool: NodePool,
                 dispatcher: Dispatcher, workers: Workers, frontend: Frontend | None = None,
                 janitor: Janitor | None = None) -> LoopCollector:
    """Register the collector of the broker's state with ``metrics``."""

    def read() -> list[Metric]:
        return [*metrics.families(), *node_families(pool), *worker_families(workers, metrics),
                *broker_families(dispatcher, frontend, janitor)]

    collector = LoopCollector(loop, read)
    metrics.registry.unregister(metrics._direct)
    metrics.registry.register(collector)
    return collector


# -- the HTTP listener --------------------------------------------------------------------------

def parse_listen(listen: str) -> tuple[str, int] | str:
    """``host:port`` (TCP) or an absolute path (a Unix socket); ConfigError otherwise."""
    if listen.startswith("/"):
        return listen
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"metrics.listen {listen!r} must be HOST:PORT or an absolute path "
                          "of a Unix socket")
    return host.strip("[]"), int(port)


class _Rendered:
    """The exposition bytes per content type, rendered at most once per interval."""

    def __init__(self, registry: CollectorRegistry, interval: float) -> None:
        self._registry = registry
        self._interval = interval
        self._cache: dict[str, tuple[float, bytes]] = {}

    def get(self, accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        now = time.monotonic()
        cached = self._cache.get(content_type)
        if cached is None or now - cached[0] >= self._interval:
            cached = self._cache[content_type] = (now, encoder(self._registry))
        return cached[1], content_type


class _Handler(BaseHTTPRequestHandler):
    timeout = _HTTP_TIMEOUT  # StreamRequestHandler: a socket timeout on every read and write
    server: Any

    def do_GET(self) -> None:  # http.server names it so
        if self.path.split("?", 1)[0] not in ("/", "/metrics"):
            self.send_error(404, "only /metrics is here")
            return
        body, content_type = self.server.rendered.get(self.headers.get("Accept") or "")
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a scraper every few seconds is not news."""


class _QuietErrors:
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A scraper that hung up or timed out is its own problem, not a traceback."""
        _log.debug("metrics_request_failed", exc_info=True)


class _TCPServer(_QuietErrors, socketserver.TCPServer):
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], rendered: _Rendered) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.rendered = rendered
        super().__init__(address, _Handler)


class _UnixServer(_QuietErrors, socketserver.UnixStreamServer):
    def __init__(self, path: str, rendered: _Rendered) -> None:
        self.rendered = rendered
        super().__init__(path, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, _ = super().get_request()
        return sock, ("unix", 0)  # http.server expects (host, port)


def _remove_stale_socket(path: str) -> None:
    """Remove a socket file a dead process left; refuse one somebody still listens on."""
    if someone_listens(path):
        raise ConfigError(f"another process listens on {path}; refusing to take metrics.listen")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class MetricsServer:
    """``GET /metrics`` on ``listen``, served by one thread, one request at a time."""

    def __init__(self, listen: str, registry: CollectorRegistry, *,
                 render_interval: float = _MIN_RENDER_INTERVAL) -> None:
        self.listen = listen
        self._address = parse_listen(listen)
        self._rendered = _Rendered(registry, render_interval)
        self._server: socketserver.BaseServer | None = None
        self._serving_thread: threading.Thread | None = None

    def start(self) -> None:
        address = self._address
        try:
            if isinstance(address, str):
                _remove_stale_socket(address)
                self._server = _UnixServer(address, self._rendered)
                os.chmod(address, 0o660)
            else:
                self._server = _TCPServer(address, self._rendered)
        except OSError as exc:
            raise ConfigError(f"cannot listen for metrics on {self.listen}: "
                              f"{exc.strerror or exc}") from exc
        self._serving_thread = threading.Thread(target=self._server.serve_forever, name="metrics",
                                        kwargs={"poll_interval": 0.5}, daemon=True)
        self._serving_thread.start()
        _log.info("metrics_listening", listen=self.listen)

    @property
    def port(self) -> int | None:
        """The TCP port bound (useful with port 0)."""
        if isinstance(self._server, _TCPServer):
            return int(self._server.server_address[1])
        return None

    def close(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if isinstance(self._address, str):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._address)
        self._server = None
