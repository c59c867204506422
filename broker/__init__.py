"""ignite-broker: per-host daemon sharing Apache Ignite thin-client connections."""

from protocol import __version__ as __version__

__all__ = ["__version__"]
