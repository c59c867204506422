"""Owns the dev-cluster exception family (one root class, DevClusterError)."""

from __future__ import annotations


class DevClusterError(Exception):
    """Root of every error raised by broker.devcluster."""


class PortInUseError(DevClusterError):
    """A port the dev cluster needs is already taken by another process."""


class NodeStartError(DevClusterError):
    """A node did not become ready; the message carries the tail of its log."""


class HandshakeFailed(DevClusterError):
    """A thin-client handshake did not complete (transport failure or rejection)."""
