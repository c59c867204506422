"""Continuous queries shared by every worker: one server-side query per (cache, options, remote
filter) on one node connection, its events fanned out to each subscribed worker as EVENT
messages, started again on another connection when that one is lost (subscribers are told
events may be missed).

Bounds: ``max_subscriptions_per_worker``; per subscriber, the messages it has not read yet
(unix://: ``max_unread_bytes``; ZeroMQ: the socket's high-water mark). A subscriber beyond
that is dropped from its subscription with a final "ended" message and never slows the
others; the server query is closed when its last subscriber goes."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from protocol import Notification, OpCode, ProtocolError, Response, UnknownSchema, queries
from protocol.ipc import EVENT_ENDED, EVENT_EVENTS, EVENT_MISSED, EVENT_SUB, Status, error_payload

from . import log
from .calls import Call
from .errors import BrokerError, ClusterUnavailable, ConnectError, Overloaded, error_of

if TYPE_CHECKING:
    from .dispatch import Dispatcher
    from .nodeconn import NodeConnection

#: Sends an unsolicited message to a worker: (identity, status, payload, max unread bytes) ->
#: whether it was taken (Frontend.push).
Push = Callable[[bytes, int, Any, int], bool]
Reply = Callable[[int, Any], None]

_log = log.get("continuous")
_SWEEP_INTERVAL = 0.25  # seconds between looks for departed subscribers and lost queries
_FINAL_TRIES = 40  # sweeps a final "ended" message is retried for a worker not reading
#: Seconds between the probe answered after a new server query's answer and telling its
#: subscribers it runs (see _after_notifications_start).
NOTIFICATIONS_GRACE = 0.05


def _no_push(identity: bytes, status: int, payload: Any, max_unread: int) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class QueryKey:
    """What makes two subscriptions share one server query."""

    cache_id: int
    page_size: int  # the node's buffer: events sent once this many are collected ...
    time_interval: int  # ... or after this many ms (0: only when the buffer is full)
    include_expired: bool
    remote_filter: bytes | None = None  # the filter object the node builds, as sent


@dataclass(frozen=True, slots=True)
class CqLimits:
    max_subscriptions_per_worker: int = 16
    max_unread_bytes: int = 4 << 20  # a unix:// subscriber's unread messages


class Subscription:
    __slots__ = ("handle", "identity", "query")

    def __init__(self, handle: int, identity: bytes, query: SharedQuery) -> None:
        self.handle = handle
        self.identity = identity
        self.query = query


class SharedQuery:
    """One server-side continuous query and the workers subscribed to it; the node
    connection's listener for its notifications."""

    __slots__ = ("backlog", "conn", "key", "lost", "manager", "resource_id", "starting",
                 "subscribers", "waiting")

    def __init__(self, manager: ContinuousQueries, key: QueryKey) -> None:
        self.manager = manager
        self.key = key
        self.subscribers: dict[int, Subscription] = {}
        self.waiting: list[tuple[Subscription, Reply]] = []  # until the query runs
        self.conn: NodeConnection | None = None
        self.resource_id: int | None = None
        self.starting = False
        self.lost: str | None = None  # why it is being started again, after it ran
        self.backlog: deque[Notification] = deque()  # held while a binary type is fetched

    def __repr__(self) -> str:
        return (f"<SharedQuery cache={self.key.cache_id} subscribers={len(self.subscribers)} "
                f"resource={self.resource_id} lost={self.lost!r}>")

    @property
    def idle(self) -> bool:
        return not self.subscribers and not self.waiting

    def notified(self, event: Notification) -> None:
        self.manager.on_notification(self, event)

    def connection_lost(self, conn: NodeConnection, reason: str) -> None:
        self.manager.on_lost(self, conn, reason)


class ContinuousQueries:
    """Every shared query and subscription of the broker."""

    def __init__(self, dispatcher: Dispatcher, limits: CqLimits | None = None) -> None:
        self.dispatcher = dispatcher
        self.limits = limits or CqLimits()
        self.push: Push = _no_push  # set once the front end exists (lifecycle)
        self._queries: dict[QueryKey, SharedQuery] = {}
        self._by_worker: dict[bytes, dict[int, Subscription]] = {}
        self._finals: dict[tuple[bytes, int], tuple[dict[str, Any], int]] = {}
        self._sweeping: asyncio.TimerHandle | None = None
        self.events_delivered = 0
        self.subscribers_dropped = 0  # slow or gone
        self.restarts = 0
        dispatcher.pool.on_ready.append(self._restart_lost)

    def __repr__(self) -> str:
        return (f"<ContinuousQueries queries={len(self._queries)} "
                f"workers={len(self._by_worker)}>")

    # -- subscribing ----------------------------------------------------------------------

    def subscribe(self, identity: bytes, key: QueryKey, reply: Reply) -> None:
        """Add a subscription; ``reply`` gets ``{"sub": handle, "node": "host:port"}`` (the
        node connection its query runs on) once the query runs (no event for it comes before
        that reply), or the error that kept it from starting."""
        mine = self._by_worker.get(identity, {})
        cap = self.limits.max_subscriptions_per_worker
        if len(mine) >= cap:
            raise Overloaded(f"this worker holds {len(mine)} continuous-query subscriptions, "
                             f"its limit (limits.max_subscriptions_per_worker = {cap}): "
                             "close some first")
        query = self._queries.get(key)
        if query is None:
            query = self._queries[key] = SharedQuery(self, key)
        sub = Subscription(self.dispatcher.workers.new_handle(), identity, query)
        self._by_worker.setdefault(identity, {})[sub.handle] = sub
        if query.resource_id is not None and query.conn is not None:
            query.subscribers[sub.handle] = sub
            reply(Status.OK, {EVENT_SUB: sub.handle, "node": query.conn.name})
        else:
            query.waiting.append((sub, reply))
            if not query.starting and query.lost is None:
                self._start(query)
        self._schedule_sweep()

    def unsubscribe(self, identity: bytes, handle: int) -> bool:
        """End one subscription of the worker; False if it has none by that handle."""
        sub = self._by_worker.get(identity, {}).get(handle)
        if sub is None:
            return False
        self._remove(sub)
        return True

    def worker_gone(self, identity: bytes) -> None:
        """The worker left: its subscriptions end with it."""
        for sub in list(self._by_worker.get(identity, {}).values()):
            self._remove(sub)

    def _remove(self, sub: Subscription) -> None:
        mine = self._by_worker.get(sub.identity)
        if mine is not None:
            mine.pop(sub.handle, None)
            if not mine:
                del self._by_worker[sub.identity]
        query = sub.query
        query.subscribers.pop(sub.handle, None)
        query.waiting = [(s, r) for s, r in query.waiting if s is not sub]
        if query.idle:
            self._close(query)

    def _end(self, sub: Subscription, error: dict[str, Any]) -> None:
        """Drop a subscriber and tell it why (retried a while if it cannot take it now)."""
        self._remove(sub)
        payload = {EVENT_SUB: sub.handle, EVENT_ENDED: error}
        if not self.push(sub.identity, Status.EVENT, payload, 1 << 62):
            self._finals[(sub.identity, sub.handle)] = (payload, _FINAL_TRIES)
            self._schedule_sweep()

    # -- the server query -----------------------------------------------------------------

    def _start(self, query: SharedQuery) -> None:
        """Send QUERY_CONTINUOUS on a connection with room for one more cursor."""
        dispatcher = self.dispatcher
        held = dispatcher.workers.cursors_held
        limit = dispatcher.limits.node_max_open_cursors_per_connection
        try:
            conn = dispatcher.pool.pick_below(held, max(1, limit - max(1, limit // 10)))
            if conn is None:
                raise Overloaded("every node connection holds its limit of open cursors "
                                 "(limits.node_max_open_cursors_per_connection)")
        except BrokerError as exc:
            self._start_failed(query, exc)
            return
        query.starting = True
        held[conn] = held.get(conn, 0) + 1
        key = query.key
        body = queries.continuous_query(key.cache_id, page_size=key.page_size,
                                        time_interval=key.time_interval,
                                        include_expired=key.include_expired,
                                        remote_filter=key.remote_filter)

        def started(response: Response) -> None:
            resource_id = queries.parse_continuous_query(response.body)

            def notifying(_: object) -> None:
                query.starting = False
                self._started(query, conn, resource_id)

            _after_notifications_start(conn, notifying)

        def failed(exc: BrokerError) -> None:
            query.starting = False
            _release(held, conn)
            self._start_failed(query, exc)

        dispatcher.call(Call(OpCode.QUERY_CONTINUOUS, body, False,
                             time.monotonic() + dispatcher.limits.default_timeout,
                             started, failed, pinned=conn))

    def _started(self, query: SharedQuery, conn: NodeConnection, resource_id: int) -> None:
        if not conn.is_open:  # lost between its answer and now: the node dropped the query
            _release(self.dispatcher.workers.cursors_held, conn)
            self._start_failed(query, ClusterUnavailable(f"{conn.name}: connection lost"))
            return
        query.conn, query.resource_id = conn, resource_id
        conn.listeners[resource_id] = query
        if query.idle:  # everyone left while it started
            self._close(query)
            return
        had = list(query.subscribers.values())  # before the loss: they may have missed some
        waiting, query.waiting = query.waiting, []
        for sub, reply in waiting:  # the replies go before any event of the query
            query.subscribers[sub.handle] = sub
            reply(Status.OK, {EVENT_SUB: sub.handle, "node": conn.name})
        if query.lost is not None:
            reason, query.lost = query.lost, None
            self.restarts += 1
            _log.info("continuous_query_restarted", cache=query.key.cache_id, node=conn.name,
                      subscribers=len(query.subscribers))
            for sub in had:
                if sub.handle in query.subscribers:
                    self._send(sub, {EVENT_SUB: sub.handle, EVENT_MISSED: reason})

    def _start_failed(self, query: SharedQuery, exc: BrokerError) -> None:
        """A connection problem while restarting waits for the next connection; anything else
        (e.g. the cache was destroyed) ends the query for its subscribers."""
        if query.lost is not None and isinstance(exc, ClusterUnavailable | ConnectError):
            _log.info("continuous_query_restart_waits", cache=query.key.cache_id,
                      reason=str(exc))
            self._schedule_sweep()
            return
        waiting, query.waiting = query.waiting, []
        for sub, reply in waiting:
            self._forget(sub)
            reply(exc.status, error_of(exc))
        error = error_of(exc)
        for sub in list(query.subscribers.values()):
            self._end(sub, error)
        self._queries.pop(query.key, None)

    def _forget(self, sub: Subscription) -> None:
        mine = self._by_worker.get(sub.identity)
        if mine is not None:
            mine.pop(sub.handle, None)
            if not mine:
                del self._by_worker[sub.identity]

    def _close(self, query: SharedQuery) -> None:
        """No subscriber left: stop the server query (once it has started)."""
        if query.starting:
            return  # closed by _started when it answers
        self._queries.pop(query.key, None)
        conn, rid = query.conn, query.resource_id
        query.conn = query.resource_id = None
        query.lost = None
        if conn is None or rid is None:
            return
        conn.listeners.pop(rid, None)
        _release(self.dispatcher.workers.cursors_held, conn)
        if conn.is_open:
            conn.send(OpCode.RESOURCE_CLOSE, queries.resource_close(rid), _ignore)

    def on_lost(self, query: SharedQuery, conn: NodeConnection, reason: str) -> None:
        """The query's connection closed (the node dropped the query): start it again."""
        _release(self.dispatcher.workers.cursors_held, conn)
        query.conn = query.resource_id = None
        query.backlog.clear()
        if query.idle:
            self._queries.pop(query.key, None)
            return
        query.lost = (f"the broker lost the continuous query's node connection ({reason}) and "
                      "started the query again: events in between may be missed")
        _log.warning("continuous_query_lost", cache=query.key.cache_id, node=conn.name,
                     reason=reason, subscribers=len(query.subscribers))
        if self.dispatcher.pool.ready:
            self._start(query)
        else:
            self._schedule_sweep()

    def _restart_lost(self) -> None:
        """A node connection is ready: start the queries that wait for one."""
        for query in list(self._queries.values()):
            if query.lost is not None and not query.starting and query.conn is None:
                self._start(query)

    # -- events ---------------------------------------------------------------------------

    def on_notification(self, query: SharedQuery, event: Notification) -> None:
        if event.status:
            _log.warning("continuous_query_error", cache=query.key.cache_id,
                         status=event.status, message=event.message)
            return
        if query.backlog:  # a binary type is being fetched: keep the order
            query.backlog.append(event)
            return
        self._deliver(query, event)

    def _deliver(self, query: SharedQuery, event: Notification) -> None:
        dispatcher = self.dispatcher
        try:
            events = queries.parse_continuous_query_event(event.body, ctx=dispatcher.codec)
        except UnknownSchema as exc:
            query.backlog.append(event)
            dispatcher.types.fetch(exc.type_id, lambda error: self._fetched(query, error))
            return
        except ProtocolError as exc:
            dispatcher.internal_error("undecodable_notification", exc,
                                      cache=query.key.cache_id)
            return
        rows = [[e.key, e.old_value, e.value, int(e.event_type)] for e in events]
        for sub in list(query.subscribers.values()):
            self._send(sub, {EVENT_SUB: sub.handle, EVENT_EVENTS: rows})
        self.events_delivered += len(rows) * len(query.subscribers)

    def _fetched(self, query: SharedQuery, error: BrokerError | None) -> None:
        """The binary type an event needed was fetched: deliver what waited, in order."""
        backlog = query.backlog
        if error is not None:
            _log.error("continuous_query_type_unknown", cache=query.key.cache_id,
                       reason=str(error), dropped=len(backlog))
            backlog.clear()
            return
        while backlog:
            event = backlog.popleft()
            before = len(backlog)
            self._deliver(query, event)
            if len(backlog) > before:  # it needs another type: put it back at the front
                backlog.rotate(1)
                return

    def _send(self, sub: Subscription, payload: dict[str, Any]) -> None:
        if not self.push(sub.identity, Status.EVENT, payload, self.limits.max_unread_bytes):
            self.subscribers_dropped += 1
            _log.info("subscriber_dropped", worker=sub.identity.hex(), sub=sub.handle)
            self._end(sub, error_payload(
                "slow_subscriber", "the worker did not read its continuous-query events fast "
                "enough (or went away): it no longer gets them; subscribe again",
                maybe_applied=None))

    # -- housekeeping ---------------------------------------------------------------------

    def _schedule_sweep(self) -> None:
        if self._sweeping is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._sweeping = loop.call_later(_SWEEP_INTERVAL, self.sweep)

    def sweep(self) -> None:
        """Drop subscribers whose worker the broker forgot (it disconnected or went silent),
        retry final messages, restart lost queries; again later while there is work."""
        self._sweeping = None
        knows = self.dispatcher.workers.knows
        for identity in [i for i in self._by_worker if not knows(i)]:
            self.worker_gone(identity)
        for (identity, handle), (payload, tries) in list(self._finals.items()):
            if self.push(identity, Status.EVENT, payload, 1 << 62) or tries <= 1 \
                    or not knows(identity):
                del self._finals[(identity, handle)]
            else:
                self._finals[(identity, handle)] = (payload, tries - 1)
        if self.dispatcher.pool.ready:
            self._restart_lost()
        if self._by_worker or self._finals or self._queries:
            self._schedule_sweep()


def _after_notifications_start(conn: NodeConnection, then: Callable[[object], None]) -> None:
    """Ignite 2.17's node starts a continuous query's notifications only once its answer has
    been written, and drops the events before that: a subscriber told at once can miss the
    first write it makes.  The request's thread attaches the listener that starts them
    (ClientCacheQueryContinuousResponse.onSent) to the write's future *after* handing the
    answer to the NIO thread, so nothing the node sends marks the moment: a probe's answer
    comes after the query's, and ``then`` runs ``NOTIFICATIONS_GRACE`` seconds after that,
    time for a preempted request thread to attach it (or at once on the connection's loss,
    which ``then`` sees as a closed connection)."""

    def answered(outcome: object) -> None:
        if conn.is_open:
            asyncio.get_running_loop().call_later(NOTIFICATIONS_GRACE, then, outcome)
        else:
            then(outcome)

    try:
        conn.probe(answered)
    except ConnectError as exc:  # lost between the answer and now
        then(exc)


def _release(held: dict[NodeConnection, int], conn: NodeConnection) -> None:
    left = held.get(conn, 0) - 1
    if left > 0:
        held[conn] = left
    else:
        held.pop(conn, None)


def _ignore(outcome: object) -> None:
    """Closing is best effort: a lost connection dropped the query already."""
