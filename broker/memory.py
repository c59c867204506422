"""What the broker's memory holds, for finding retention (admin ``memory``): the resident set,
live Python objects by type (and their change since the last look), and, while tracing, the
source lines that allocated what is still held since tracing began."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections import Counter
from typing import Any

from .janitor import resident_bytes, trim_heap

#: Lines (or types) listed in one answer at most.
TOP = 25


class MemoryProbe:
    """The admin command's state: object counts of the last look, and the snapshot taken when
    tracing began (what was allocated before is not traced)."""

    def __init__(self) -> None:
        self._last_types: Counter[str] = Counter()

    def command(self, args: list[str]) -> dict[str, Any]:
        """``memory`` (a look), ``memory trace N`` (start tracing, N frames deep),
        ``memory untrace``, ``memory trim`` (give freed heap back, then look)."""
        if args[:1] == ["trace"]:
            frames = int(args[1]) if len(args) > 1 and args[1].isdigit() else 1
            tracemalloc.stop()
            tracemalloc.start(min(max(frames, 1), 16))
            return {"tracing": True, "frames": tracemalloc.get_traceback_limit()}
        if args[:1] == ["untrace"]:
            tracemalloc.stop()
            return {"tracing": False}
        if args[:1] == ["trim"]:
            gc.collect()
            trim_heap()
        return self.look()

    def look(self) -> dict[str, Any]:
        types = Counter(type(o).__name__ for o in gc.get_objects())
        grown = types - self._last_types
        self._last_types = types
        out: dict[str, Any] = {
            "rss_bytes": resident_bytes(),
            "python_objects": sum(types.values()),
            "objects_by_type": dict(types.most_common(TOP)),
            "objects_grown_since_last_look": dict(grown.most_common(TOP)),
            "pymalloc_blocks": sys.getallocatedblocks(),
            "tracing": tracemalloc.is_tracing(),
        }
        if tracemalloc.is_tracing():
            current, peak = tracemalloc.get_traced_memory()
            stats = tracemalloc.take_snapshot().statistics("traceback")
            out["traced_bytes"] = current
            out["traced_peak_bytes"] = peak
            out["held_since_tracing_began"] = [
                {"bytes": s.size, "blocks": s.count,
                 "where": [f"{f.filename}:{f.lineno}" for f in s.traceback]}
                for s in stats[:TOP]]
        return out
