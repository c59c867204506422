"""The celery app of tests/integration/test_app_servers.py: tasks kv.put/kv.get through one
libclient Client made and used at import, before the prefork pool forks; Redis is the queue."""

from __future__ import annotations

import os

from celery import Celery

from libclient import Client

app = Celery("kv", broker=os.environ["APP_REDIS_URL"], backend=os.environ["APP_REDIS_URL"])
app.conf.update(worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)

CLIENT = Client()  # endpoint: $IGNITE_BROKER
CLIENT.connect()
CACHE = CLIENT.get_or_create_cache(os.environ["APP_CACHE"])
CACHE.put("preloaded-by", os.getpid())  # the client is in use when the pool is forked


@app.task(name="kv.put")
def put(key: str, value: str) -> int:
    CACHE.put(key, value)
    return os.getpid()


@app.task(name="kv.get")
def get(key: str) -> tuple[str | None, int]:
    return CACHE.get(key), os.getpid()
