"""What handlers read from a request's arguments: a typed argument, the cache id (names
memoised) and the worker's open transaction."""

from __future__ import annotations

from typing import Any

from protocol import cache_id

from .errors import BadRequest, ClusterUnavailable, EndedWithBroker, brief
from .workers import Transaction, Worker, of_another_run

#: The cache-id memo: names up to this long, this many at most.
_CACHED_NAME_CHARS = 256
_CACHED_NAMES = 10_000


def arg(args: dict[str, Any], name: str, kind: type | tuple[type, ...] = object,
        default: Any = ...) -> Any:
    """A request argument, checked for type; BadRequest names what is wrong."""
    try:
        value = args[name]
    except KeyError:
        if default is not ...:
            return default
        raise BadRequest(f"missing argument {name!r}") from None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"argument {name!r} has the wrong type ({type(value).__name__})")
    return value


class CacheIds:
    """The cache id of a request's ``cache`` argument: a name (hashed once, then remembered)
    or an int id, as pyignite allows."""

    __slots__ = ("_ids",)

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def of(self, args: dict[str, Any]) -> int:
        name = arg(args, "cache", (str, int))
        if isinstance(name, int):
            if not -(2**31) <= name < 2**31:
                raise BadRequest("a cache id is a signed 32-bit int")
            return name
        cid = self._ids.get(name)
        if cid is None:
            cid = cache_id(name)
            if len(name) <= _CACHED_NAME_CHARS:  # the memo holds at most ~2.5 MB of names
                if len(self._ids) >= _CACHED_NAMES:
                    self._ids.clear()
                self._ids[name] = cid
        return cid


def ended_with_an_earlier_run(what: str, handle: int, then: str) -> None:
    """Raises EndedWithBroker when ``handle`` (not open here) has another broker run's mark:
    its transaction, cursor or subscription ended with that run (workers.RUN)."""
    if of_another_run(handle):
        raise EndedWithBroker(f"{what} {handle} was opened on an earlier run of the broker, "
                              f"which has ended (restarted or killed): {then}")


def transaction(worker: Worker, args: dict[str, Any]) -> Transaction | None:
    """The worker's transaction named by the ``tx`` argument (None without one); a
    transaction whose connection was lost is forgotten and refused."""
    handle = args.get("tx")
    if handle is None:
        return None
    tx = worker.transactions.get(handle) if isinstance(handle, int) else None
    if tx is None:
        if isinstance(handle, int):
            ended_with_an_earlier_run("transaction", handle,
                                      "the server rolled it back; start it again")
        raise BadRequest(f"transaction {brief(handle)} is not open on this worker (a "
                         "transaction lives on the broker connection that started it: after "
                         "a broker restart or a lost connection, start it again)")
    if not tx.conn.is_open:
        del worker.transactions[handle]
        raise ClusterUnavailable(
            f"the connection of transaction {handle} was lost: the server rolled it back",
            maybe_applied=False)
    return tx
