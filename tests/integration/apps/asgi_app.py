"""The Starlette app uvicorn serves in tests/integration/test_app_servers.py: PUT/GET
/kv/<key> through one libclient AioClient per worker process, connected at start-up."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from libclient import AioClient

CLIENT = AioClient()  # endpoint: $IGNITE_BROKER


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await CLIENT.connect()
    app.state.cache = await CLIENT.get_or_create_cache(os.environ["APP_CACHE"])
    yield
    await CLIENT.close()


async def kv(request: Request) -> JSONResponse:
    cache = request.app.state.cache
    key = request.path_params["key"]
    if request.method == "PUT":
        await cache.put(key, (await request.body()).decode())
        return JSONResponse({"pid": os.getpid()})
    return JSONResponse({"pid": os.getpid(), "value": await cache.get(key)})


app = Starlette(routes=[Route("/kv/{key}", kv, methods=["GET", "PUT"])], lifespan=lifespan)
