"""HANDLERS: the IPC ops the broker serves, by name, each with its handler from ops_kv.py,
ops_query.py, ops_admin.py or ops_cq.py (the table the Dispatcher is built with)."""

from __future__ import annotations

from .context import Handler
from .ops_admin import HANDLERS as ADMIN
from .ops_cq import HANDLERS as CQ
from .ops_kv import HANDLERS as KV
from .ops_query import HANDLERS as QUERY

HANDLERS: dict[str, Handler] = {**KV, **QUERY, **ADMIN, **CQ}
