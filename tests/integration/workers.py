"""Worker processes for integration tests: spawned (a fresh interpreter each, as a pre-fork
server's workers are not: the child reads its environment and imports the stub itself), each
putting ``(index, result)`` on a queue."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any


def run_workers(target: Callable[..., None], args: tuple[Any, ...], count: int,
                timeout: float = 120.0) -> dict[int, Any]:
    """Run ``target(*args, index, out)`` in ``count`` spawned processes; return each one's
    result by index, once every process has exited 0."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, i, out)) for i in range(count)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=timeout) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return results
