"""ignite-broker: per-host daemon sharing Apache Ignite thin-client connections."""

__version__ = "0.1.0"
