"""The stub's request lifecycle without I/O: what a request is, what may be re-sent, which
channel may carry it, and how replies find their requests.  The drivers (transport.py for
blocking code, aio_transport.py for asyncio, each over a ZeroMQ DEALER or a Unix stream) own
the sockets, the clocks, the threads and the event loops; they tell this module what happened
and do what it says.

Theory of operation.  One request is an ``Exchange``::

    TO_SEND --sent()--> IN_FLIGHT --reply_received(reply)--> DONE (result, or the mapped error)
       ^                    |
       |                    +--connection_lost()--> TO_SEND  (a read, re-sends left, not
       |                    |                   |    pinned to a cursor or transaction)
       |                    |                   \\-> DONE: BrokerUnavailable (a write: "may have
       |                    |                       been applied"; a read out of re-sends or
       |                    |                       pinned: not applied)
       |                    +--not_processed()--> TO_SEND, after ``resend_delay`` (a call
       |                    |                   \\    not pinned to a cursor or transaction)
       |                    |                    \\-> DONE: BrokerUnavailable, not applied (pinned)
       |                    +--wait(now)--> DONE: BrokerTimeout, past the deadline + GRACE
       +--not_sent()--> DONE: BrokerUnavailable, "was not sent" (no broker by the deadline, or
                        none there at all for connect_timeout: see ``Connecting``)

"Not processed" is said by a stopping broker (docs/ipc.md, "Stopping"): the reply
NOT_PROCESSED for one request, or GOING_AWAY as the last message of a unix:// connection for
every request on it still without a reply.  Such a request, read or write, is sent again on a
new connection (``not_processed``: the drivers retire the old one) within its deadline; a call
pinned to a cursor or transaction fails instead, not applied (they ended with that broker).

"Nothing was sent" is knowable: a DEALER with IMMEDIATE=1 queues nothing without a connection,
and a stream write that fails holds at most part of a request, which the broker drops.  So a
request the driver could not send is never in doubt; one that was sent and whose connection
then ended is in doubt, and only reads (``Call.idempotent``) are sent again.

A *channel* (``ChannelState``) is one connection to the broker and what rides on it: the
requests *in flight* (request id -> waiter, ``reply_to``; the blocking driver has one at a time
and matches it with ``Exchange.match``), the *deferred* frames (fire-and-forget closes of
abandoned cursors, sent with the channel's next traffic; their replies are dropped by id), the
*holds* (cursors and transactions pinned to it, which keep it pinged), and the pid that made
it: a forked child never uses it (``pinned_refusal``) and opens its own.
"""

from __future__ import annotations

from .access import endpoint_hint
from .envelope import deadline_ms, ipc, next_request_id, pack_request, result_of, unpack_reply
from .exceptions import BrokerTimeout, BrokerUnavailable, ReconnectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .calls import Call

#: After its deadline, how long a request still waits for the broker's own DEADLINE_EXCEEDED.
GRACE = 0.5
#: How often a waiting request checks that the broker connection is still there.
LIVENESS_SLICE = 0.1
#: Connects while the broker is away: the first retry delay, doubled up to the last.
CONNECT_RETRY_FIRST = 0.005
CONNECT_RETRY_MAX = 0.25
#: How long connecting goes on while nobody is there (no socket file; tcp://: no answer)
#: before a request fails, when $IGNITE_BROKER_CONNECT_TIMEOUT and ``connect_timeout=`` say
#: nothing.  Meant to outlast the gap without a socket file in a plain restart (the old broker
#: removes it once drained, 1.5-2 s in issue 11; the new one binds only once its node pool is
#: up), yet far below gunicorn's 30 s worker timeout; issue 11's bound is 5 s.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: The broker's deadline for deferred frames.
DEFERRED_BUDGET = 30.0

# Exchange states.
TO_SEND = "TO_SEND"
IN_FLIGHT = "IN_FLIGHT"
DONE = "DONE"


# -- errors ---------------------------------------------------------------------------------

def not_sent_error(endpoint: str, call: Call, budget: float) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"no broker reachable at {endpoint} within {budget:.1f}s{endpoint_hint(endpoint)}; "
        f"{call.op} was not sent", maybe_applied=False)


def nobody_error(endpoint: str, call: Call, connect_timeout: float) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"no broker at {endpoint}: nobody there for connect_timeout={connect_timeout:g}s"
        f"{endpoint_hint(endpoint, start=True)}; {call.op} was not sent", maybe_applied=False)


def lost_error(endpoint: str, call: Call, resends: int) -> BrokerUnavailable:
    if call.idempotent:
        return BrokerUnavailable(
            f"the broker at {endpoint} went away during {call.op} (re-sent {resends} times); "
            "it is a read, nothing was changed", maybe_applied=None)
    return BrokerUnavailable(
        f"the broker at {endpoint} went away after {call.op} was sent: "
        "the write may have been applied", maybe_applied=True)


def timeout_error(endpoint: str, call: Call, budget: float) -> BrokerTimeout:
    tail = "" if call.idempotent else ": the write may have been applied"
    return BrokerTimeout(f"no reply from the broker at {endpoint} to {call.op} within "
                         f"{budget:.1f}s{tail}", maybe_applied=None if call.idempotent else True)


def unprocessed_pinned_error(endpoint: str, call: Call) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"the broker at {endpoint} stopped and did not process {call.op}: nothing was "
        "changed, but the cursor or transaction it belongs to ended with that broker",
        maybe_applied=False)


def lost_pinned_error(endpoint: str, call: Call) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"the broker at {endpoint} went away during {call.op}: the cursor or transaction it "
        "belongs to ended with that broker (not sent again: the next broker does not hold "
        "it)", maybe_applied=False)


def ended_pinned_error(endpoint: str, call: Call) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"the connection to the broker at {endpoint} that held the cursor or transaction of "
        f"{call.op} has ended, and they with it: {call.op} was not sent", maybe_applied=False)


def pinned(call: Call) -> bool:
    """Whether ``call`` belongs to a cursor or transaction already open on its channel (a call
    that opens one is not pinned until it is answered)."""
    return call.hold is not None and call.hold.established


def closed_error(again: str) -> ReconnectError:
    """The client was closed; ``again`` says how to reopen it in this flavour."""
    return ReconnectError(f"the client is closed: {again}")


# -- one request ----------------------------------------------------------------------------

class Exchange:
    """One request from its first send to its result.  Events: ``sent``, ``not_sent``,
    ``reply_received``, ``connection_lost``, ``wait`` (a slice of waiting begins, or passed
    with nothing).  A call that ends the exchange in failure raises the error to give the
    caller; ``state`` says what the driver does next (send the frame, or await its reply)."""

    __slots__ = ("backoff", "call", "deadline", "endpoint", "frame", "request_id", "resends",
                 "retries", "start", "state", "unprocessed")

    def __init__(self, call: Call, endpoint: str, start: float, deadline: float,
                 retries: int) -> None:
        self.call = call
        self.endpoint = endpoint
        self.start = start
        self.deadline = deadline
        self.retries = retries
        self.resends = 0
        self.unprocessed = 0  # times a broker said it did not process it
        self.backoff: Backoff | None = None
        self.request_id = request_id = next_request_id()
        self.frame = pack_request(request_id, call.op, call.args, deadline_ms(deadline - start))
        self.state = TO_SEND

    def __repr__(self) -> str:
        return (f"<Exchange {self.call.op} id={self.request_id} {self.state} "
                f"resends={self.resends}>")

    @property
    def reply_by(self) -> float:
        """When waiting ends: the deadline and the broker's grace to report it."""
        return self.deadline + GRACE

    def sent(self) -> None:
        """The frame is on its way to the broker."""
        if self.state is not TO_SEND:
            raise RuntimeError(f"{self!r}: sent twice")
        self.state = IN_FLIGHT

    def match(self, message: bytes, *, going_away: bool = False) -> Any:
        """The reply in ``message`` if it answers this request, else None (a reply nobody
        waits for any more: a ping, a deferred frame, an abandoned request); for drivers that
        await one request at a time.  ``going_away``: a GOING_AWAY message answers it too
        (unix:// only: on a stream it is the connection's last word).  Raises
        BrokerProtocolError for a malformed reply."""
        reply = unpack_reply(message)
        if reply.request_id == self.request_id or (going_away and is_going_away(reply)):
            return reply
        if refuses(reply, [len(self.frame)]):  # TOO_LARGE & co.: the one request in flight
            return reply
        return None

    def not_sent(self, nobody_for: float | None = None) -> None:
        """The broker could not be reached by the deadline, or (``nobody_for``, the connect
        timeout, from ``Connecting.nobody_for``) there was none at all: nothing was sent.
        Raises."""
        self.state = DONE
        if nobody_for is not None:
            raise nobody_error(self.endpoint, self.call, nobody_for)
        raise not_sent_error(self.endpoint, self.call, self.deadline - self.start)

    def reply_received(self, reply: Any, connection: int = 0) -> Any:
        """The reply (it came on the channel's ``connection``): the op's result, or raises
        its mapped error."""
        self.state = DONE
        result = result_of(reply, self.call)
        hold = self.call.hold
        if hold is not None and not hold.established:
            hold.established = True  # the cursor or transaction lives there now
            hold.connection = connection
        return result

    def check_hold(self, channel: ChannelState) -> None:
        """Before a call pinned to a cursor or transaction is sent: raises (nothing sent,
        nothing applied) when the connection they live on has ended; the channel has none
        now, or another one (a new broker session, maybe with the next broker)."""
        hold = self.call.hold
        if pinned(self.call) and (hold.connection != channel.connection
                                  or not channel.linked()):
            self.state = DONE
            raise ended_pinned_error(self.endpoint, self.call)

    def not_processed(self) -> None:
        """The broker said it did not process the request (``not_processed(reply)``, or a
        GOING_AWAY on its connection): back to TO_SEND, for the next broker on a new
        connection after ``resend_delay``.  A pinned call raises (its cursor or transaction
        ended with that broker), unless it is the one that opens them: nothing lives there
        yet, so it goes to the next broker too (its hold moves with it)."""
        if pinned(self.call):
            self.state = DONE
            raise unprocessed_pinned_error(self.endpoint, self.call)
        self.unprocessed += 1
        self.state = TO_SEND

    def resend_delay(self, now: float) -> float:
        """How long to wait before sending again a request that was not processed: a stopping
        broker that is still reachable (tcp://) answers at once, so back off a little."""
        if self.backoff is None:
            self.backoff = Backoff()
        delay = self.backoff.next_delay(now, self.deadline)
        return 0.0 if delay is None else delay

    def connection_lost(self) -> None:
        """The connection ended with the request in flight: back to TO_SEND when it is a read
        with re-sends left, not pinned to a cursor or transaction (they ended with that
        connection: the next broker does not hold them); otherwise raises (a write may have
        been applied)."""
        if self.call.idempotent and pinned(self.call):
            self.state = DONE
            raise lost_pinned_error(self.endpoint, self.call)
        if self.call.idempotent and self.resends < self.retries:
            self.resends += 1
            self.state = TO_SEND
            return
        self.state = DONE
        raise lost_error(self.endpoint, self.call, self.resends)

    def time_left(self, now: float) -> float:
        return self.deadline + GRACE - now

    def wait(self, now: float) -> float:
        """How long the driver may wait for the reply before checking the connection again;
        raises BrokerTimeout once the deadline and its grace have passed."""
        left = self.deadline + GRACE - now
        if left <= 0:
            self.timed_out()
        return left if left < LIVENESS_SLICE else LIVENESS_SLICE

    def timed_out(self) -> None:
        """No reply by the deadline and its grace.  Raises."""
        self.state = DONE
        raise timeout_error(self.endpoint, self.call, self.deadline - self.start)


def not_processed(reply: Any) -> bool:
    """Whether ``reply`` says that the broker did not process its request: NOT_PROCESSED,
    GOING_AWAY, or an older broker's CLUSTER_UNAVAILABLE of kind "shutting_down"."""
    status = reply.status
    if not status:
        return False
    statuses = ipc().Status
    if status in (statuses.NOT_PROCESSED, statuses.GOING_AWAY):
        return True
    payload = reply.payload
    return (status == statuses.CLUSTER_UNAVAILABLE and isinstance(payload, dict)
            and payload.get("kind") == "shutting_down")


def refuses(reply: Any, sizes: list[int]) -> list[int]:
    """Which of the requests in flight (their frame ``sizes``) ``reply`` refuses when it is a
    refusal the broker could not give a request id (request id 0: TOO_LARGE, BAD_REQUEST of an
    unreadable envelope, OVERLOADED by its memory budget; docs/ipc.md "Request ids"): their
    indexes in ``sizes``.  A TOO_LARGE names the broker's limit, so it refuses exactly the
    frames above it; another names the refused frame's size, which is that request's if no
    other in flight has the same size (else none: a wrong guess could call a write that was
    applied refused); without either (an older broker) the request in flight, if it is the
    only one.  Empty for replies that are not such refusals (EVENT, GOING_AWAY, a reply with
    an id)."""
    m = ipc()
    if reply.request_id != m.UNNAMED_REFUSAL_REQUEST_ID or reply.status in (
            m.Status.OK, m.Status.EVENT, m.Status.GOING_AWAY):
        return []
    payload = reply.payload if isinstance(reply.payload, dict) else {}
    limit, refused = payload.get(m.TOO_LARGE_LIMIT), payload.get(m.REFUSED_SIZE)
    if reply.status == m.Status.TOO_LARGE and isinstance(limit, int):
        return [i for i, size in enumerate(sizes) if size > limit]
    if isinstance(refused, int):
        same = [i for i, size in enumerate(sizes) if size == refused]
        return same if len(same) == 1 else []
    return [0] if len(sizes) == 1 else []


def is_going_away(reply: Any) -> bool:
    """A GOING_AWAY message (unix:// only): no request of its connection still without a
    reply was processed."""
    return bool(reply.status == ipc().Status.GOING_AWAY)


# -- one channel ----------------------------------------------------------------------------

class ChannelState:
    """What rides on one connection to the broker (see the module's docstring).  The drivers'
    channels extend it with their socket and their locking."""

    __slots__ = ("__weakref__", "closed", "connection", "deferred", "holds", "in_flight",
                 "last_activity", "pid", "sizes")

    def __init__(self, pid: int, now: float) -> None:
        self.pid = pid
        # Which connection (a broker session) the channel is on: the drivers count each new
        # one; a cursor or transaction lives on the one it was opened on (Hold.connection).
        self.connection = 0
        self.closed = False
        self.holds = 0
        self.deferred: list[bytes] = []
        self.in_flight: dict[int, Any] = {}
        self.sizes: dict[int, int] = {}  # request id -> frame bytes, for refusals without id
        self.last_activity = now

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} pid={self.pid} in_flight={len(self.in_flight)} "
                f"deferred={len(self.deferred)} holds={self.holds} closed={self.closed}>")

    def linked(self) -> bool:
        """Whether the channel is on a connection now (a stream: not after its end; ZeroMQ
        cannot tell, its DEALER reconnects by itself)."""
        return True

    def defer(self, op: str, args: dict[str, Any]) -> None:
        """Queue a fire-and-forget request, sent with the channel's next traffic."""
        self.deferred.append(pack_request(next_request_id(), op, args,
                                          deadline_ms(DEFERRED_BUDGET)))

    def track(self, request_id: int, waiter: Any, size: int) -> None:
        """A request of ``size`` frame bytes is in flight; ``waiter`` gets its reply."""
        self.in_flight[request_id] = waiter
        self.sizes[request_id] = size

    def untrack(self, request_id: int) -> None:
        self.in_flight.pop(request_id, None)
        self.sizes.pop(request_id, None)

    def reply_to(self, message: bytes) -> list[tuple[Any, Any]]:
        """[(waiter, reply)] for a reply whose request is in flight (``Exchange.match`` for
        many requests at once); for a refusal without a request id, one pair per request it
        refuses (``refuses``); empty for a reply nobody waits for any more.  Raises
        BrokerProtocolError for a malformed reply."""
        reply = unpack_reply(message)
        waiter = self.in_flight.get(reply.request_id)
        if waiter is not None:
            return [(waiter, reply)]
        ids = list(self.sizes)
        return [(self.in_flight[ids[i]], reply)
                for i in refuses(reply, [self.sizes[rid] for rid in ids])
                if ids[i] in self.in_flight]

    def add_hold(self) -> bool:
        """One more cursor or transaction pinned here; True for the first (start pinging)."""
        self.holds += 1
        return self.holds == 1

    def drop_hold(self) -> bool:
        """One fewer; True when none is left (stop pinging)."""
        self.holds -= 1
        return self.holds == 0

    def wants_ping(self, now: float, interval: float, pid: int) -> bool:
        """A heartbeat is due: silent for ``interval``, open, and this process's."""
        return (now - self.last_activity >= interval and not self.closed
                and self.pid == pid)


def pinned_refusal(call: Call, channel: ChannelState, pid: int, *, same_loop: bool = True,
                   refuse_closed: bool = True) -> Exception | None:
    """Why ``call``, pinned to ``channel`` by a cursor or transaction, may not use it: made by
    another process (no use across fork), of another event loop (asyncio), or closed (the
    asyncio driver leaves that to its closed-client error)."""
    if channel.pid != pid:
        return call.error(f"{call.op}: this cursor or transaction belongs to process "
                          f"{channel.pid}; it does not survive fork()")
    if not same_loop:
        return call.error(f"{call.op}: this cursor or transaction belongs to another event "
                          "loop")
    if refuse_closed and channel.closed:
        return call.error(f"{call.op}: the client that opened this cursor or transaction "
                          "is closed")
    return None


class Hold:
    """Pins a channel while a cursor or transaction lives on it; the first hold starts its
    heartbeat (``_first``), the last release ends it (``_last``).  ``established`` once the
    call that opens them was answered: before that, the hold may move to another channel."""

    __slots__ = ("__weakref__", "channel", "connection", "established", "released")

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.released = False
        self.established = False
        self.connection = 0  # the channel's connection when established
        if channel.add_hold():
            self._first()

    def move_to(self, channel: Any) -> None:
        """The opening call goes to another channel (a stopping broker did not process it)."""
        if channel is self.channel or self.released:
            return
        if self.channel.drop_hold():
            self._last()
        self.channel = channel
        if channel.add_hold():
            self._first()

    def defer(self, op: str, args: dict[str, Any]) -> None:
        """Queue a fire-and-forget request, sent with the channel's next traffic."""
        self.channel.defer(op, args)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        if self.channel.drop_hold():
            self._last()

    def _first(self) -> None:
        pass

    def _last(self) -> None:
        pass


# -- the process and the link ---------------------------------------------------------------

class Owner:
    """The process whose sockets a transport holds (redis-py's pid rule)."""

    __slots__ = ("pid",)

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def forked(self, pid: int) -> bool:
        """True once in a new process (``pid``): the caller drops every channel it inherited,
        without closing them, and opens new ones."""
        if pid == self.pid:
            return False
        self.pid = pid
        return True


class Link:
    """Whether the broker is up, as far as the requests tell: ``change`` says when it flips
    (the first news is not a flip), for the client's connection events."""

    __slots__ = ("up",)

    def __init__(self) -> None:
        self.up: bool | None = None

    def change(self, up: bool) -> bool:
        was, self.up = self.up, up
        return was is not None and was != up

    def forget(self) -> None:
        self.up = None

    def describe(self, closed: bool) -> str:
        return "closed" if closed else {None: "new", True: "up", False: "lost"}[self.up]


class Backoff:
    """Connect retries while the broker is away: delays from CONNECT_RETRY_FIRST doubling to
    CONNECT_RETRY_MAX, the last one cut short so that the last try is made at ``until``; none
    once ``until`` has come."""

    __slots__ = ("delay",)

    def __init__(self) -> None:
        self.delay = CONNECT_RETRY_FIRST

    def next_delay(self, now: float, until: float) -> float | None:
        delay = self.delay
        if now >= until:
            return None
        self.delay = min(delay * 2, CONNECT_RETRY_MAX)
        return min(delay, until - now)


class Connecting:
    """One stretch of connecting while the broker is away: when to try again (``Backoff``)
    and when to stop.  While the socket file is there (``present``: the broker is restarting,
    or systemd's socket activation holds the backlog) tries go on until the request's deadline
    (``until``); while it is not, only for ``connect_timeout`` from the first try: nobody is
    there, and a worker should not be tied up for the whole request budget.  An endpoint
    without a file (tcp://, abstract ipc://@ names) is never ``present``.  Once it gave up
    for that reason, ``nobody_for`` is the connect timeout (for ``Exchange.not_sent``)."""

    __slots__ = ("backoff", "connect_timeout", "give_up_at", "nobody_for")

    def __init__(self, now: float, connect_timeout: float) -> None:
        self.backoff = Backoff()
        self.connect_timeout = connect_timeout
        self.give_up_at = now + connect_timeout
        self.nobody_for: float | None = None

    def next_delay(self, now: float, until: float, present: bool) -> float | None:
        """The delay before the next try, or None: give up (``nobody_for`` says why)."""
        if not present and self.give_up_at < until:
            if now >= self.give_up_at:
                self.nobody_for = self.connect_timeout
                return None
            until = self.give_up_at
        return self.backoff.next_delay(now, until)

    def gives_up(self, now: float, until: float, present: bool) -> bool:
        """For drivers that poll rather than retry (a DEALER reconnects by itself): True once
        it is time to stop (``nobody_for`` says why)."""
        if not present and self.give_up_at < until and now >= self.give_up_at:
            self.nobody_for = self.connect_timeout
            return True
        return now >= until
