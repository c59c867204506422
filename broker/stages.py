"""Stage timestamps of each request through the broker, for the bench's stage-decomposition rung
(bench/stages.py): installed only when ``IGNITE_BROKER_STAGES`` names a file, read once at start.
Off (the default), nothing here is imported into the request path: it costs nothing.

On, a few methods of the front end and the node connection are wrapped so that each request
served one at a time (a sequential worker) gets ``time.perf_counter_ns()`` stamps, the same
clock as any other process on the host (CLOCK_MONOTONIC):

    read      the worker's bytes handed to the broker (StreamWorker.data_received, or the
              ZeroMQ message received)
    decoded   the request envelope unpacked (its request id is recorded)
    node_write  the node connection's write (NodeConnection.flush)
    node_read   the node's answer handed to the broker (NodeConnection.data_received)
    encoded   the reply envelope packed
    written   the reply handed to the worker's socket

One line per request, ``request_id stage=ns ...``, is appended to the file in chunks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

ENV = "IGNITE_BROKER_STAGES"
#: Records written to the file at once (a write costs one request's latency per chunk).
_CHUNK = 200

_clock = time.perf_counter_ns


class _Recorder:
    """The open record (a request being served) and the finished ones not yet written."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.current: list[tuple[str, int]] | None = None
        self.request_id = 0
        self.done: list[str] = []

    def open(self) -> None:
        self.current = [("read", _clock())]

    def stamp(self, stage: str) -> None:
        if self.current is not None:
            self.current.append((stage, _clock()))

    def close(self) -> None:
        record, self.current = self.current, None
        if record is None:
            return
        record.append(("written", _clock()))
        self.done.append(f"{self.request_id} " + " ".join(f"{s}={t}" for s, t in record))
        if len(self.done) >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.done:
            with open(self.path, "a", encoding="ascii") as out:
                out.write("\n".join(self.done) + "\n")
            self.done.clear()


def install_from_environment() -> bool:
    """Wrap the request path's methods when ``IGNITE_BROKER_STAGES`` is set; True if it was."""
    path = os.environ.get(ENV)
    if not path:
        return False
    install(_Recorder(path))
    return True


def install(rec: _Recorder) -> None:
    import atexit

    from protocol import ipc

    from . import frontend, nodeconn

    atexit.register(rec.flush)
    stream = frontend.StreamWorker
    front = frontend.Frontend
    node = nodeconn.NodeConnection

    def unpack(frame: bytes) -> ipc.Request:
        request = ipc.unpack_request(frame)
        rec.request_id = request.request_id
        rec.stamp("decoded")
        return request

    setattr(frontend, "_unpack_request", unpack)  # noqa: B010 - replaced, not read
    _before(stream, "data_received", rec.open)
    _before(front, "_handle", rec.open)
    _after(front, "encode_reply", lambda: rec.stamp("encoded"))
    _after(stream, "flush", rec.close)
    _after(front, "_send", rec.close)
    _before(node, "flush", lambda: rec.stamp("node_write"))
    _before(node, "data_received", lambda: rec.stamp("node_read"))


def _before(cls: type, name: str, hook: Callable[[], None]) -> None:
    original = getattr(cls, name)

    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        hook()
        return original(self, *args, **kwargs)

    setattr(cls, name, wrapped)


def _after(cls: type, name: str, hook: Callable[[], None]) -> None:
    original = getattr(cls, name)

    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        hook()
        return result

    setattr(cls, name, wrapped)
