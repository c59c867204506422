"""Structured logging for the daemon: one structlog line per lifecycle event, to stderr."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def configure(level: str = "info", fmt: str = "console") -> None:
    """Set up structlog; safe to call again on reload."""
    if fmt == "json":  # tracebacks become a string field, not a repr of the exception
        tail: list[Any] = [structlog.processors.format_exc_info,
                           structlog.processors.JSONRenderer()]
    else:
        tail = [structlog.dev.ConsoleRenderer(colors=False)]
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *tail,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


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
