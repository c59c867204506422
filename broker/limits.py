"""Limits: the bounds the broker keeps on workers' requests (admission, deadlines, what a
request may ask of a node, cache starts and stops), from the configuration's limits.*."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    max_in_flight_per_worker: int = 1024
    max_in_flight_total: int = 65536
    default_timeout: float = 30.0
    #: the longest a request is served, whatever deadline it carries
    max_request_timeout: float = 600.0
    queue_wait: float = 5.0  # how long a request waits for a node while none is reachable
    coalesce_reads: bool = False  # identical concurrent reads share one cluster request
    # single-key gets/puts of one event-loop iteration go to a node as one get_all/put_all
    batch_requests: bool = True
    batch_max_keys: int = 256
    batch_max_bytes: int = 256 * 1024
    # bounds on what a worker may ask of a node (broker/bounds.py)
    max_page_size: int = 10_000
    max_keys_per_request: int = 100_000
    max_transactions_per_worker: int = 32
    max_cursors_per_worker: int = 100
    node_max_active_tx_per_connection: int = 100  # Ignite's ThinClientConfiguration default
    node_max_open_cursors_per_connection: int = 128  # Ignite's ClientConnectorConfiguration
    cache_changes_per_second: float = 1.0  # cache starts and stops per worker (cachechanges.py)
    cache_changes_burst: int = 50
    #: the share of time cache starts and stops of all workers together may hold the cluster,
    #: after cache_changes_hold_burst seconds of it at once (cachechanges.Serial)
    cache_changes_duty: float = 0.02
    cache_changes_hold_burst: float = 10.0
