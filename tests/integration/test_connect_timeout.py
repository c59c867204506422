"""Fast, clear failure when nobody is there (issue 11), against a real broker and node: once
the broker is stopped (its socket files gone), a request with a 30 s budget fails within the
1 s connect timeout, not after 30 s, saying nothing was sent, naming the path and how to start
the broker; started again, the same client works.  unix:// and ipc://, sync and asyncio."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest

from broker.devcluster.brokerproc import BrokerProcess
from libclient import AioClient, Client
from libclient.exceptions import BrokerUnavailable

pytestmark = pytest.mark.integration

REQUEST_TIMEOUT = 30.0
CONNECT_TIMEOUT = 1.0
#: Only a hang to the request timeout misses it; not a timing measurement.
BOUND = 15.0


def _check(exc: BrokerUnavailable, path: str, op: str) -> None:
    text = str(exc)
    assert exc.maybe_applied is False
    assert "\n" not in text
    assert f"no socket file at {path}" in text
    assert "ignite-broker run --config" in text and "systemctl start ignite-broker" in text
    assert f"{op} was not sent" in text


@pytest.mark.parametrize("which", ["stream_endpoint", "endpoint"])
def test_a_stopped_broker_fails_requests_within_connect_timeout(ignite_node, tmp_path_factory,
                                                                 which):
    proc = BrokerProcess(ignite_node.addresses,
                         workdir=tmp_path_factory.mktemp(f"connect-timeout-{which}"))
    proc.start()
    endpoint = getattr(proc, which)
    path = endpoint.split("://", 1)[1]
    name = f"connect-timeout-{uuid.uuid4().hex[:6]}"
    client = Client(broker=endpoint, timeout=REQUEST_TIMEOUT, connect_timeout=CONNECT_TIMEOUT)
    aio = AioClient(broker=endpoint, connect_timeout=CONNECT_TIMEOUT)
    loop = asyncio.new_event_loop()
    try:
        client.connect()
        cache = client.get_or_create_cache(name)
        cache.put("k", "before")
        loop.run_until_complete(aio.connect())
        aio_cache = loop.run_until_complete(aio.get_or_create_cache(name))
        assert loop.run_until_complete(aio_cache.get("k")) == "before"

        assert proc.stop() == 0
        assert not os.path.exists(path)

        for op, call in (("cache_get", lambda: cache.get("k")),
                         ("cache_put", lambda: cache.put("k", "while down"))):
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable) as exc:
                call()
            elapsed = time.monotonic() - started
            print(f"sync {which} {op}: failed after {elapsed:.2f}s")
            assert elapsed < BOUND
            _check(exc.value, path, op)

        async def aio_get() -> float:
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable) as exc:
                await aio_cache.get("k", timeout=REQUEST_TIMEOUT)
            _check(exc.value, path, "cache_get")
            return time.monotonic() - started

        elapsed = loop.run_until_complete(aio_get())
        print(f"aio {which} cache_get: failed after {elapsed:.2f}s")
        assert elapsed < BOUND

        proc.start()  # back: the same clients work again
        assert cache.get("k") == "before"
        assert loop.run_until_complete(aio_cache.get("k")) == "before"
        cache.destroy()
    finally:
        client.close()
        loop.run_until_complete(aio.close())
        loop.close()
        proc.stop()
        print(proc.log())
