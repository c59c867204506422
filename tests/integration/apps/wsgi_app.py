"""The WSGI app gunicorn serves in tests/integration/test_app_servers.py: PUT/GET /kv/<key>
through one libclient Client made and used at import, before ``gunicorn --preload`` forks."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable

from libclient import Client

CLIENT = Client()  # endpoint: $IGNITE_BROKER
CLIENT.connect()
CACHE = CLIENT.get_or_create_cache(os.environ["APP_CACHE"])
CACHE.put("preloaded-by", os.getpid())  # the client is in use when the workers are forked


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    key = environ["PATH_INFO"].removeprefix("/kv/")
    if environ["REQUEST_METHOD"] == "PUT":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        CACHE.put(key, environ["wsgi.input"].read(size).decode())
        answer = {"pid": os.getpid()}
    else:
        answer = {"pid": os.getpid(), "value": CACHE.get(key)}
    body = json.dumps(answer).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
