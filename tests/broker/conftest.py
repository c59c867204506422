"""protocol.binary must be imported before the broker's modules (an import circle of
protocol/'s own, issue 13); test modules import the broker first."""

import protocol.binary.primitives  # noqa: F401
