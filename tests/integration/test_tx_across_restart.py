"""Issue 11: a transaction open across a graceful restart commits.  The stopping broker keeps
serving the requests of a worker's open transaction (and its commit) within
broker.drain_timeout while it refuses new work with NOT_PROCESSED; the stub never sends a
transaction's request to a broker that does not hold it, and its other requests go to the next
broker meanwhile (in-place upgrade: the new one serves while the old one drains).  A real
broker daemon, a real node, both transports, the sync and the asyncio stub."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.upgrade import alive
from libclient import AioClient, Client
from libclient.datatypes import cache_config as cc
from libclient.datatypes import prop_codes as p
from libclient.exceptions import BrokerUnavailable
from tests.integration.daemon import WAIT, Daemon, wait_until

pytestmark = pytest.mark.integration

_ROOT = Path(__file__).resolve().parents[2]


def _tx_cache(name: str) -> dict[int, Any]:
    return {p.PROP_NAME: name,
            p.PROP_CACHE_ATOMICITY_MODE: cc.CacheAtomicityMode.TRANSACTIONAL}


class Restart:
    """A SIGTERM (the next broker starts once the old one is gone) or an in-place upgrade
    (the next broker serves while the old one drains), begun while a transaction is open."""

    def __init__(self, daemon: Daemon, how: str) -> None:
        self.daemon, self.how = daemon, how
        self.old = daemon.serving_pid()
        self.upgrade: subprocess.Popen[str] | None = None

    def begin(self) -> None:
        """Returns once the old broker is draining (and, upgrading, the new one serves)."""
        assert self.old is not None
        if self.how == "term":
            os.kill(self.old, signal.SIGTERM)
            wait_until(lambda: "shutdown_requested" in self.daemon.log(), "the drain")
            return
        self.upgrade = subprocess.Popen(
            [sys.executable, "-m", "broker", "upgrade", "--config", str(self.daemon.config_path)],
            cwd=_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_until(lambda: self.daemon.serving_pid() not in (None, self.old),
                   "the new broker to serve")

    def finish(self) -> None:
        """The old broker exits (the transaction is over: well before drain_timeout, which
        the test sets far above WAIT); after a SIGTERM the next one starts."""
        assert self.old is not None
        self.daemon.wait_exit(self.old)
        if self.upgrade is not None:
            out, _ = self.upgrade.communicate(timeout=WAIT)
            assert self.upgrade.returncode == 0, (out, self.daemon.log())
        else:
            self.daemon.start()
            wait_until(lambda: self.daemon.serving_pid() == self.daemon.pid
                       and alive(self.daemon.pid), "the next broker")


def _daemon(tmp_path: Path, nodes: list[tuple[str, int]]) -> Daemon:
    # A drain_timeout no test run reaches: the old broker must exit because the transaction
    # ended, not because its time was up.
    return Daemon(tmp_path, nodes, broker__drain_timeout=3 * WAIT)


@contextlib.contextmanager
def _restartable(tmp_path: Path, nodes: list[tuple[str, int]], how: str) -> Iterator[Restart]:
    """A ready broker daemon and the restart a test begins; every broker it ran stopped after."""
    daemon = _daemon(tmp_path, nodes)
    daemon.start()
    restart = None
    try:
        wait_until(lambda: daemon.serving_pid() == daemon.pid and "ready" in daemon.log(),
                   "the broker to be ready")
        restart = Restart(daemon, how)
        yield restart
    finally:
        _stop_all(daemon, restart)


def _check(endpoint: str, cache_name: str, expected: dict[str, int]) -> None:
    """What a fresh client of the new broker reads."""
    client = Client(broker=endpoint, timeout=WAIT)
    with client.connect():
        cache = client.get_cache(cache_name)
        assert cache.get_all(list(expected)) == expected


@pytest.mark.parametrize("how", ["term", "upgrade"])
@pytest.mark.parametrize("transport", ["unix", "ipc"])
def test_sync_transaction_open_across_restart_commits(ignite_node, tmp_path, transport, how):
    name = f"txr-{uuid.uuid4().hex[:8]}"
    with _restartable(tmp_path, ignite_node.addresses, how) as restart:
        daemon = restart.daemon
        endpoint = daemon.endpoints[transport]
        client = Client(broker=endpoint, timeout=WAIT, handshake_timeout=WAIT)
        client.connect()
        cache = client.get_or_create_cache(_tx_cache(name))
        with client.tx_start() as tx:
            cache.put("before", 1)
            restart.begin()
            cache.put("during", 2)  # served by the draining broker, in the transaction
            assert cache.get("before") == 1
            if how == "upgrade":  # outside the transaction: to the new broker meanwhile
                assert name in client.get_cache_names()
            tx.commit()
        restart.finish()
        assert cache.get_all(["before", "during"]) == {"before": 1, "during": 2}
        with client.tx_start() as tx:  # and the next transaction, on the new broker
            cache.put("after", 3)
            tx.commit()
        _check(endpoint, name, {"before": 1, "during": 2, "after": 3})
        assert "drained" in daemon.log()
        client.close()


async def _aio_scenario(endpoint: str, name: str, restart: Restart) -> None:
    client = AioClient(broker=endpoint, handshake_timeout=WAIT)
    async with client.connect():
        cache = await client.get_or_create_cache(_tx_cache(name))
        async with client.tx_start() as tx:
            await cache.put("before", 1)
            await asyncio.to_thread(restart.begin)
            await cache.put("during", 2)
            assert await cache.get("before") == 1
            if restart.how == "upgrade":
                assert name in await client.get_cache_names()
            await tx.commit()
        await asyncio.to_thread(restart.finish)
        assert await cache.get_all(["before", "during"]) == {"before": 1, "during": 2}


@pytest.mark.parametrize("how", ["term", "upgrade"])
@pytest.mark.parametrize("transport", ["unix", "ipc"])
def test_aio_transaction_open_across_restart_commits(ignite_node, tmp_path, transport, how):
    name = f"txr-{uuid.uuid4().hex[:8]}"
    with _restartable(tmp_path, ignite_node.addresses, how) as restart:
        endpoint = restart.daemon.endpoints[transport]
        asyncio.run(_aio_scenario(endpoint, name, restart))
        _check(endpoint, name, {"before": 1, "during": 2})


def _kill_and_restart(daemon: Daemon) -> None:
    """kill -9 of the serving broker (no drain, no GOING_AWAY), then the next one."""
    old = daemon.serving_pid()
    assert old is not None
    os.kill(old, signal.SIGKILL)
    daemon.wait_exit(old)
    daemon.start()
    wait_until(lambda: daemon.serving_pid() == daemon.pid and alive(daemon.pid),
               "the next broker")


@pytest.mark.parametrize("transport", ["unix", "ipc"])
def test_a_transaction_open_across_a_kill_9_ends_with_that_broker(ignite_node, tmp_path,
                                                                  transport):
    """Was (ipc://): the next broker refused the transaction's handle as never given, and the
    stub raised ParameterError "not open on this worker"; a ZeroMQ socket reconnects by
    itself, so the stub cannot know.  Handles carry their broker run's mark: the stub raises
    BrokerUnavailable, nothing applied, as over unix:// (where it sees the connection end)."""
    name = f"txk-{uuid.uuid4().hex[:8]}"
    with _restartable(tmp_path, ignite_node.addresses, "term") as restart:
        daemon = restart.daemon
        client = Client(broker=daemon.endpoints[transport], timeout=WAIT,
                        handshake_timeout=WAIT)
        client.connect()
        cache = client.get_or_create_cache(_tx_cache(name))
        tx = client.tx_start()
        cache.put("before", 1)
        _kill_and_restart(daemon)
        restart.old = None  # gone: nothing to stop
        with pytest.raises(BrokerUnavailable) as raised:
            cache.put("during", 2)
        assert raised.value.maybe_applied is False
        with pytest.raises(BrokerUnavailable):
            tx.close()
        with client.tx_start() as next_tx:  # the next transaction, on the next broker
            cache.put("after", 3)
            next_tx.commit()
        assert cache.get_all(["before", "during", "after"]) == {"after": 3}
        client.close()


def _stop_all(daemon: Daemon, restart: Restart | None) -> None:
    pid = daemon.serving_pid()
    if pid is not None and alive(pid):
        daemon.stop(pid)
    if restart is not None and restart.old is not None and alive(restart.old):
        daemon.stop(restart.old)
    daemon.stop()
    print(daemon.log())
