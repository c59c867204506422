"""The process entry point (``ignite-broker``, ``python -m broker``): switches the compiled hot
path on for ``run`` before anything imports the modules it replaces, then the command line."""

from __future__ import annotations

import sys

from . import native


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["run"]:
        native.activate()
    from .cli import main as command_line

    return command_line(argv)
