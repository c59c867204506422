"""Local Apache Ignite dev clusters (real server JVMs from Maven jars) for tests and demos."""

from broker.devcluster.certs import SslFiles
from broker.devcluster.cluster import (
    AUTH_PASSWORD,
    AUTH_USER,
    DevCluster,
    ensure_ports_free,
    stop_clusters,
)
from broker.devcluster.errors import (
    DevClusterError,
    HandshakeFailed,
    NodeStartError,
    PortInUseError,
)
from broker.devcluster.maven import IGNITE_VERSIONS, IgniteRuntime, prepare_runtime
from broker.devcluster.probe import HandshakeResult, client_ssl_context, handshake
from broker.devcluster.state import (
    ClusterRecord,
    NodePorts,
    NodeRecord,
    list_records,
    node_ports,
    state_root,
)

__all__ = [
    "AUTH_PASSWORD",
    "AUTH_USER",
    "IGNITE_VERSIONS",
    "ClusterRecord",
    "DevCluster",
    "DevClusterError",
    "HandshakeFailed",
    "HandshakeResult",
    "IgniteRuntime",
    "NodePorts",
    "NodeRecord",
    "NodeStartError",
    "PortInUseError",
    "SslFiles",
    "client_ssl_context",
    "ensure_ports_free",
    "handshake",
    "list_records",
    "node_ports",
    "prepare_runtime",
    "state_root",
    "stop_clusters",
]
