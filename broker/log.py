"""Structured logging for the daemon: one structlog line per lifecycle event, to stderr, with
the standard library's ``logging`` (asyncio, pyzmq, anything else) rendered the same way."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import IO, Any

import structlog
from structlog.stdlib import ProcessorFormatter

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}

#: The one standard-library logger structlog writes through (its lines carry ``component``).
_STDLIB = logging.getLogger("ignite_broker")
_handler: logging.Handler | None = None  # ours on the root logger, replaced on reconfigure


def configure(level: str = "info", fmt: str = "console", stream: IO[str] | None = None) -> None:
    """Set up structlog and route the standard library's logging through the same renderer
    and level; safe to call again (reload, ``admin log-level``)."""
    global _handler
    shared: list[Any] = [structlog.processors.add_log_level,
                         structlog.processors.TimeStamper(fmt="iso", utc=True)]
    if fmt == "json":  # tracebacks become a string field, not a repr of the exception
        tail: list[Any] = [structlog.processors.format_exc_info,
                           structlog.processors.JSONRenderer()]
    else:
        tail = [structlog.dev.ConsoleRenderer(colors=False)]
    structlog.configure(
        processors=[*shared, ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=lambda *args: _STDLIB,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(ProcessorFormatter(
        foreign_pre_chain=[*shared, _component_from_logger_name],
        processors=[ProcessorFormatter.remove_processors_meta, *tail]))
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    _handler = handler
    logging.captureWarnings(True)  # warnings.warn() becomes a line too, not a bare stderr write


def _component_from_logger_name(logger: Any, method: str,
                                event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """A standard-library line says which library wrote it, as ours say which module."""
    record = event.get("_record")
    if record is not None:
        event.setdefault("component", record.name)
    return event


def set_level(level: str) -> None:
    """Change the level of every line (ours and the standard library's) without a reload."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]))
    logging.getLogger().setLevel(LEVELS[level])


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(component=name)
    return logger


class Throttle:
    """Lets at most ``burst`` lines of one event through per ``interval`` seconds; the lines
    held back are counted and the count rides on the next line let through, so a flood of bad
    requests costs a few log lines, not one each."""

    __slots__ = ("_burst", "_clock", "_interval", "_left", "_window_end", "suppressed")

    def __init__(self, burst: int = 10, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._burst = burst
        self._interval = interval
        self._clock = clock
        self._left = burst
        self._window_end = 0.0
        self.suppressed = 0

    def allow(self) -> int | None:
        """None: hold this line back; else log it with ``suppressed=`` the returned count."""
        now = self._clock()
        if now >= self._window_end:
            self._window_end = now + self._interval
            self._left = self._burst
        if self._left <= 0:
            self.suppressed += 1
            return None
        self._left -= 1
        held, self.suppressed = self.suppressed, 0
        return held
