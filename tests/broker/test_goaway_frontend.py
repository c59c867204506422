"""The frontend's side of a graceful stop (issue 11), on real sockets without a node: after
``stop_accepting`` no request is dispatched; ZeroMQ peers are told GOING_AWAY and later
requests NOT_PROCESSED; a stream gets the replies of its started requests, then GOING_AWAY,
then the end of the broker's side, and nothing sent after it is dispatched.  A worker with an
open transaction (``lingering``) is served what belongs to it until ``let_go``."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import zmq

from broker.budget import MemoryBudget
from broker.frontend import Frontend
from protocol import ipc
from protocol.ipcstream import MessageReader
from protocol.ipcstream import frame as stream_frame


class HeldDispatch:
    """Answers ``now`` ops at once and holds the others until ``release``."""

    def __init__(self) -> None:
        self.dispatched: list[int] = []
        self.held: list[tuple[int, Any]] = []

    def __call__(self, identity: bytes, request: ipc.Request, reply: Any) -> None:
        self.dispatched.append(request.request_id)
        if request.op == "now":
            reply(request.request_id, ipc.Status.OK, "done")
        else:
            self.held.append((request.request_id, reply))

    def release(self) -> None:
        for request_id, reply in self.held:
            reply(request_id, ipc.Status.OK, "late")
        self.held.clear()


def _in_tx_7(identity: bytes, args: dict[str, Any]) -> bool:
    """The registry's answer in these tests: transaction 7 is open on every worker."""
    return args.get("tx") == 7


def _frontend(tmp_path, dispatch: HeldDispatch) -> Frontend:
    endpoints = [f"ipc://{tmp_path}/run/b.sock", f"unix://{tmp_path}/run/b.stream"]
    frontend = Frontend(zmq.Context.instance(), endpoints, dispatch,
                        max_request_bytes=1 << 20, socket_mode=0o600,
                        belongs_to_open=_in_tx_7)
    frontend.bind()
    return frontend


def _request(request_id: int, op: str, **args: Any) -> bytes:
    return ipc.pack_request(request_id, op, args, 0)


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.005)


def _dealer(path: str, routing_id: bytes) -> Any:
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.ROUTING_ID, routing_id)
    dealer.connect(f"ipc://{path}")
    return dealer


async def _receive(dealer: Any, count: int) -> list[ipc.Reply]:
    replies = []
    while len(replies) < count:
        await _until(lambda: dealer.poll(0))
        replies.append(ipc.unpack_reply(dealer.recv()))
    return replies


def test_a_stream_gets_its_started_replies_then_going_away(tmp_path):
    dispatch = HeldDispatch()

    async def main() -> list[ipc.Reply]:
        frontend = _frontend(tmp_path, dispatch)
        await frontend.start()
        reader, writer = await asyncio.open_unix_connection(f"{tmp_path}/run/b.stream")
        writer.write(stream_frame(_request(1, "now")) + stream_frame(_request(2, "later")))
        await _until(lambda: dispatch.dispatched == [1, 2])
        frontend.stop_accepting()
        assert frontend.streams_busy == 1  # request 2 is started
        writer.write(stream_frame(_request(3, "now")))  # never read, never dispatched
        await writer.drain()
        await asyncio.sleep(0.05)
        dispatch.release()
        await _until(lambda: frontend.streams_busy == 0)
        data = await asyncio.wait_for(reader.read(), 10)  # up to the broker's end of file
        writer.write(stream_frame(_request(4, "now")))  # after GOING_AWAY: dropped
        await writer.drain()
        await asyncio.sleep(0.05)
        assert dispatch.dispatched == [1, 2]
        writer.close()
        frontend.close()
        return [ipc.unpack_reply(m) for m in MessageReader().feed(data)]

    replies = asyncio.run(main())
    assert [(r.request_id, r.status) for r in replies] == [
        (1, ipc.Status.OK), (2, ipc.Status.OK),
        (ipc.GOING_AWAY_REQUEST_ID, ipc.Status.GOING_AWAY)]
    assert replies[-1].payload["maybe_applied"] is False


def test_zeromq_peers_are_told_and_new_requests_not_processed(tmp_path):
    dispatch = HeldDispatch()
    path = f"{tmp_path}/run/b.sock"

    async def main() -> list[ipc.Reply]:
        frontend = _frontend(tmp_path, dispatch)
        await frontend.start()
        dealer = _dealer(path, b"peer-1")
        dealer.send(_request(1, "later"))
        await _until(lambda: dispatch.dispatched == [1])
        frontend.stop_accepting([b"peer-1", b"\x00stream" + bytes(8)])
        assert not os.path.exists(path)  # a new socket cannot reach this broker
        dealer.send(_request(2, "now"))
        replies = await _receive(dealer, 2)
        dispatch.release()
        replies += await _receive(dealer, 1)
        assert dispatch.dispatched == [1]
        dealer.close()
        frontend.close()
        return replies

    replies = asyncio.run(main())
    assert [(r.request_id, r.status) for r in replies] == [
        (ipc.GOING_AWAY_REQUEST_ID, ipc.Status.GOING_AWAY),
        (2, ipc.Status.NOT_PROCESSED), (1, ipc.Status.OK)]
    assert replies[1].payload == ipc.not_processed_payload()


def test_a_stream_with_an_open_transaction_is_served_it_until_let_go(tmp_path):
    dispatch = HeldDispatch()

    async def main() -> list[ipc.Reply]:
        frontend = _frontend(tmp_path, dispatch)
        await frontend.start()
        reader, writer = await asyncio.open_unix_connection(f"{tmp_path}/run/b.stream")
        writer.write(stream_frame(_request(1, "now", tx=7)))
        await _until(lambda: dispatch.dispatched == [1])
        (identity,) = frontend.streams()
        frontend.stop_accepting([identity], lingering=[identity])
        writer.write(stream_frame(_request(2, "now")) + stream_frame(_request(3, "now", tx=7)))
        await _until(lambda: dispatch.dispatched == [1, 3])
        assert frontend.streams_busy == 1 and frontend.lingering == {identity}
        frontend.let_go(identity)  # its transaction is over
        await _until(lambda: frontend.streams_busy == 0)
        data = await asyncio.wait_for(reader.read(), 10)  # up to the broker's end of file
        writer.close()
        frontend.close()
        return [ipc.unpack_reply(m) for m in MessageReader().feed(data)]

    replies = asyncio.run(main())
    assert [(r.request_id, r.status) for r in replies] == [
        (1, ipc.Status.OK), (2, ipc.Status.NOT_PROCESSED), (3, ipc.Status.OK),
        (ipc.GOING_AWAY_REQUEST_ID, ipc.Status.GOING_AWAY)]


def test_a_zeromq_peer_with_an_open_transaction_is_told_only_when_let_go(tmp_path):
    dispatch = HeldDispatch()
    path = f"{tmp_path}/run/b.sock"

    async def main() -> list[ipc.Reply]:
        frontend = _frontend(tmp_path, dispatch)
        await frontend.start()
        dealer = _dealer(path, b"peer-tx")
        dealer.send(_request(1, "now", tx=7))
        await _until(lambda: dispatch.dispatched == [1])
        frontend.stop_accepting([b"peer-tx", b"peer-other"], lingering=[b"peer-tx"])
        dealer.send(_request(2, "now"))  # not its transaction's: not processed
        dealer.send(_request(3, "now", tx=7))
        replies = await _receive(dealer, 3)
        frontend.let_go(b"peer-tx")
        replies += await _receive(dealer, 1)
        assert dispatch.dispatched == [1, 3] and not frontend.lingering
        dealer.close()
        frontend.close()
        return replies

    replies = asyncio.run(main())
    assert [(r.request_id, r.status) for r in replies] == [
        (1, ipc.Status.OK), (2, ipc.Status.NOT_PROCESSED), (3, ipc.Status.OK),
        (ipc.GOING_AWAY_REQUEST_ID, ipc.Status.GOING_AWAY)]


def test_closing_without_stopping_still_removes_the_socket_files(tmp_path):
    frontend = _frontend(tmp_path, HeldDispatch())
    frontend.close()
    assert not os.path.exists(f"{tmp_path}/run/b.sock")
    assert not os.path.exists(f"{tmp_path}/run/b.stream")


def test_a_stream_the_broker_stopped_reading_is_not_stalled(tmp_path):
    """Was (a CI failure of test_isolation's reused-id case): the stall clock ran on while
    the broker itself had stopped reading a connection (the worker's share of memory held by
    its requests in flight), and the janitor closed a worker that was only waiting.  Now the
    clock runs only while the broker reads, and starts again when reading resumes."""
    dispatch = HeldDispatch()

    async def main() -> None:
        endpoints = [f"ipc://{tmp_path}/run/b.sock", f"unix://{tmp_path}/run/b.stream"]
        frontend = Frontend(zmq.Context.instance(), endpoints, dispatch,
                            max_request_bytes=1 << 20, socket_mode=0o600,
                            budget=MemoryBudget(1 << 20, 4000))
        frontend.bind()
        await frontend.start()
        _, writer = await asyncio.open_unix_connection(f"{tmp_path}/run/b.stream")
        held = stream_frame(_request(1, "later", pad="x" * 5000))  # over the worker's share
        writer.write(held + stream_frame(_request(2, "now"))[:5])  # and part of the next
        await _until(lambda: dispatch.dispatched == [1])
        await asyncio.sleep(0.05)
        later = time.monotonic() + 60
        assert frontend.close_stalled(later, 1.0) == 0  # waiting on the broker: not a stall
        dispatch.release()  # the share is freed: reading resumes, the clock starts again
        await _until(lambda: frontend.budget.held < 1000)  # only the partial frame is left
        assert frontend.close_stalled(time.monotonic() + 0.5, 1.0) == 0
        assert frontend.close_stalled(time.monotonic() + 60, 1.0) == 1  # a stall still is one
        writer.close()
        frontend.close()

    asyncio.run(main())
