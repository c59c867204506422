"""The thin-client feature bits (handshake bitmask, protocol 1.7.0+): the one list of them.

Server ``ClientBitmaskFeature`` and Java client ``ProtocolBitmaskFeature`` (identical lists);
bit *i* is bit ``i % 8`` of byte ``i // 8`` of the handshake's mask. Members are ints, so a
``frozenset[int]`` of negotiated bits answers ``Feature.HEARTBEAT in features``."""

from __future__ import annotations

import enum


class Feature(enum.IntEnum):
    USER_ATTRIBUTES = 0  # a Map (or NULL) of user attributes follows the mask in the handshake
    EXECUTE_TASK_BY_NAME = 1  # op 6000
    CLUSTER_STATES = 2  # i8 state in 5000/5001 (ACTIVE_READ_ONLY); pyignite's CLUSTER_API
    CLUSTER_GROUP_GET_NODES_ENDPOINTS = 3  # op 5102
    CLUSTER_GROUPS = 4
    SERVICE_INVOKE = 5
    DEFAULT_QRY_TIMEOUT = 6
    QRY_PARTITIONS_BATCH_SIZE = 7  # partitions + update batch size in 2004
    BINARY_CONFIGURATION = 8  # op 3004
    GET_SERVICE_DESCRIPTORS = 9  # ops 7001/7002
    SERVICE_INVOKE_CALLCTX = 10
    HEARTBEAT = 11  # ops 1 (heartbeat) and 2 (idle timeout)
    DATA_REPLICATION_OPERATIONS = 12  # ops 1022/1023
    ALL_AFFINITY_MAPPINGS = 13  # extra bools in 1101
    INDEX_QUERY = 14  # ops 2008/2009
    INDEX_QUERY_LIMIT = 15
    SERVICE_TOPOLOGY = 16  # op 7003
    CACHE_INVOKE = 17  # ops 1024/1025
    TX_AWARE_QUERIES = 18  # Ignite 2.17: the tx id in a query prefix is honoured
    FORCE_DEACTIVATION_FLAG = 19  # Ignite 2.17: 5001 carries a force flag (index inferred)


#: What ClientConnection asks for unless told otherwise.
DEFAULT_FEATURES = frozenset({Feature.CLUSTER_STATES, Feature.CLUSTER_GROUP_GET_NODES_ENDPOINTS,
                              Feature.HEARTBEAT})
