"""Transactions: pyignite's ``Transaction`` and ``AioTransaction`` over one shared core.

As in pyignite the current transaction lives in a ``contextvars.ContextVar``: one per thread or
asyncio task, and cache operations of the same client inside it carry its handle (``tx``) on
the socket that started it.  A transaction does not survive ``fork()``: in a child the parent's
transaction is simply not current.
"""

from __future__ import annotations

import contextvars
import os

from .calls import Call
from .exceptions import CacheError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any

__all__ = ["AioTransaction", "Transaction", "current_tx"]


class _TxContext:
    __slots__ = ("client", "hold", "pid", "tx_id")

    def __init__(self, client: Any, tx_id: int, hold: Any) -> None:
        self.client = client
        self.tx_id = tx_id
        self.hold = hold
        self.pid = os.getpid()


_CURRENT_TX: contextvars.ContextVar[_TxContext | None] = contextvars.ContextVar(
    "libclient_current_tx", default=None)


def current_tx(client: Any) -> _TxContext | None:
    """The transaction of this thread/task, if ``client`` started it in this process."""
    ctx = _CURRENT_TX.get()
    if ctx is not None and ctx.client is client and ctx.pid == os.getpid():
        return ctx
    return None


def _validate_enum(value: Any, name: str) -> Any:
    from .datatypes import transactions

    cls = getattr(transactions, name)
    if value not in {v.value for v in cls}:
        raise ValueError(f"{value} not in {cls}")
    return value


def _validate_timeout(value: Any) -> int:
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"Timeout value should be a positive integer, {value} passed instead")
    return value


def _validate_label(value: Any) -> Any:
    if value and not isinstance(value, str):
        raise ValueError(f"Label should be str, {type(value)} passed instead")
    return value


class _BaseTransaction:
    def __init__(self, client: Any, concurrency: Any = 1,
                 isolation: Any = 1, timeout: int = 0,
                 label: str | None = None) -> None:
        self.client = client
        self.concurrency = _validate_enum(concurrency, "TransactionConcurrency")
        self.isolation = _validate_enum(isolation, "TransactionIsolation")
        self.timeout = _validate_timeout(timeout)
        self.label, self.closed = _validate_label(label), False
        self.tx_id: int | None = None
        self._hold: Any = None

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} tx_id={self.tx_id} label={self.label!r} "
                f"closed={self.closed}>")

    def _start(self) -> Generator[Call, Any, None]:
        hold = self.client._hold()
        try:
            tx_id = yield Call("tx_start", {"concurrency": int(self.concurrency),
                                            "isolation": int(self.isolation),
                                            "timeout": self.timeout, "label": self.label},
                               hold=hold)
        except BaseException:
            hold.release()
            raise
        self.tx_id, self._hold = tx_id, hold
        _CURRENT_TX.set(_TxContext(self.client, tx_id, hold))

    def _end(self, committed: bool) -> Generator[Call, Any, None]:
        ctx = _CURRENT_TX.get()
        if ctx is None or ctx.tx_id != self.tx_id or ctx.client is not self.client:
            raise CacheError("Cannot commit transaction from different thread or coroutine")
        try:
            yield Call("tx_end", {"tx": self.tx_id, "commit": committed}, hold=self._hold)
        finally:
            _CURRENT_TX.set(None)
            self._hold.release()


class Transaction(_BaseTransaction):
    """Thin client transaction: started at once; rolled back on exit unless committed."""

    def __init__(self, client: Any, concurrency: Any = 1,
                 isolation: Any = 1, timeout: int = 0,
                 label: str | None = None) -> None:
        super().__init__(client, concurrency, isolation, timeout, label)
        client._run(self._start())

    def commit(self) -> None:
        if not self.closed:
            self.closed = True
            self.client._run(self._end(True))

    def rollback(self) -> None:
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.client._run(self._end(False))

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AioTransaction(_BaseTransaction):
    """Async thin client transaction: starts on ``async with`` (or ``await``)."""

    def __await__(self) -> Any:
        return self.__aenter__().__await__()

    async def commit(self) -> None:
        if not self.closed:
            self.closed = True
            await self.client._arun(self._end(True))

    async def rollback(self) -> None:
        await self.close()

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.client._arun(self._end(False))

    async def __aenter__(self) -> AioTransaction:
        await self.client._arun(self._start())
        self.closed = False
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
