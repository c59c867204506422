"""Checks a stub implementation against vectors.json: a fake broker on an endpoint (unix:// or
ipc://) answers each request with the recorded reply of the first unused exchange whose request
it matches, and reports requests that match none and exchanges never asked for.

    python -m tests.conformance.check_stub unix:///tmp/fake/broker.stream [--case key_value ...]

Drive your stub through the cases meanwhile (each case's "doc" and requests say what it does);
the fake broker stops when every exchange was used, on Ctrl-C, or after --timeout seconds, and
exits 0 when the stub sent every recorded request and nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from tests.conformance.check_broker import load
from tests.conformance.wire import Mismatch, decode, encode, from_json, match

_BAD_REQUEST = 1
#: Sends one message to one stub connection.
Send = Callable[[bytes], None]


class ReplayBroker:
    """The fake broker; ``expect(cases)`` sets the exchanges it answers from."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.unexpected: list[str] = []
        self._lock = threading.Lock()
        self._exchanges: list[dict[str, Any]] = []
        self._used: list[bool] = []
        self._bindings: dict[str, Any] = {}
        self._stop = threading.Event()
        if endpoint.startswith("unix://"):
            path = endpoint[len("unix://"):]
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(path)
            self._listener.listen()
            self._thread = threading.Thread(target=self._accept, daemon=True)
        else:
            self._router = zmq.Context.instance().socket(zmq.ROUTER)
            self._router.setsockopt(zmq.LINGER, 0)
            self._router.bind(endpoint)
            self._thread = threading.Thread(target=self._route, daemon=True)
        self._thread.start()

    def expect(self, cases: list[dict[str, Any]]) -> None:
        """Answer from these cases' exchanges from now on (raw cases are left out).  The
        pushes recorded after an exchange are sent once it is answered, each to the
        connection that subscribed the handle it names."""
        with self._lock:
            self._exchanges = []
            self._after: list[list[dict[str, Any]]] = []
            for case in cases:
                if case["kind"] != "stub":
                    continue
                for ex in case["exchanges"]:
                    if ex.get("push"):
                        self._after[-1].append(ex)
                    else:
                        self._exchanges.append(ex)
                        self._after.append([])
            self._used = [False] * len(self._exchanges)
            self._bindings = {}
            self._subscribers: dict[str, Send] = {}
            self.unexpected = []

    def unused(self) -> list[str]:
        with self._lock:
            return [f"{i}: {ex['op']} {ex['request'][4]}" for i, (ex, used)
                    in enumerate(zip(self._exchanges, self._used, strict=True)) if not used]

    def answer(self, frame: bytes, send: Send) -> None:
        """Answer one request frame with ``send`` (its connection's), then send the pushes
        recorded after it."""
        try:
            actual = decode(frame)
            envelope = isinstance(actual, list) and len(actual) == 5
            request_id, op = (actual[1], actual[2]) if envelope else (0, None)
        except Exception as exc:  # not msgpack at all
            send(self._refuse(0, f"not a msgpack message: {exc}", frame))
            return
        with self._lock:
            reasons = []
            for i, ex in enumerate(self._exchanges):
                if self._used[i]:
                    continue
                trial = dict(self._bindings)
                try:
                    match(ex["request"], actual, trial)
                except Mismatch as exc:
                    if ex["op"] == op:
                        reasons.append(str(exc))
                    continue
                self._used[i] = True
                self._bindings = trial
                sub = ex["reply"][3].get("sub") if ex["op"] == "cq_subscribe" and \
                    ex["reply"][2] == 0 else None
                if isinstance(sub, dict) and "$var" in sub:
                    self._subscribers[sub["$var"]] = send
                send(encode(ex["reply"], self._filler(request_id)))
                self._push(self._after[i])
                return
        why = f"; nearest: {reasons[0]}" if reasons else ""
        send(self._refuse(request_id, f"no recorded request matches{why}", frame))

    def _push(self, pushes: list[dict[str, Any]]) -> None:
        for push in pushes:
            sub = push["reply"][3].get("sub")
            send = self._subscribers.get(sub.get("$var")) if isinstance(sub, dict) else None
            if send is None:
                self.unexpected.append(f"a recorded push for an unknown subscription: {sub}")
                continue
            send(encode(push["reply"], self._filler(0)))

    def _filler(self, request_id: int) -> Any:
        def fill(mark: dict[str, Any]) -> Any:
            if mark.get("role") == "request_id":
                return request_id
            if "$var" in mark:  # the stub must send this handle back
                self._bindings[mark["$var"]] = mark["was"]
            return from_json(mark["was"])

        return fill

    def _refuse(self, request_id: int, message: str, frame: bytes) -> bytes:
        self.unexpected.append(f"{message}: {frame[:200].hex()}")
        error = {"kind": "bad_request", "message": f"conformance: {message}",
                 "server_status": None, "maybe_applied": None}
        return encode([1, request_id, _BAD_REQUEST, error])

    def done(self) -> bool:
        with self._lock:
            return all(self._used)

    # -- transports -----------------------------------------------------------------------------

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve_stream, args=(conn,), daemon=True).start()

    def _serve_stream(self, conn: socket.socket) -> None:
        buffer = b""
        lock = threading.Lock()  # pushes come from the threads of other connections

        def send(message: bytes) -> None:
            with lock, contextlib.suppress(OSError):
                conn.sendall(len(message).to_bytes(4, "big") + message)

        with conn, contextlib.suppress(OSError):
            while data := conn.recv(1 << 16):
                buffer += data
                while len(buffer) >= 4 and len(buffer) >= 4 + (
                        size := int.from_bytes(buffer[:4], "big")):
                    frame, buffer = buffer[4:4 + size], buffer[4 + size:]
                    self.answer(frame, send)

    def _route(self) -> None:
        router = self._router
        try:
            while not self._stop.is_set():
                if not router.poll(100):
                    continue
                frames = router.recv_multipart()
                identity = frames[0]
                self.answer(frames[-1], lambda message, to=identity: router.send_multipart(
                    [to, message]))  # pushes are sent from this thread too
        finally:
            router.close()

    def stop(self) -> None:
        self._stop.set()
        if hasattr(self, "_listener"):
            self._listener.close()
        self._thread.join(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("endpoint")
    parser.add_argument("--case", action="append", help="only these cases (repeatable)")
    parser.add_argument("--timeout", type=float, default=600.0)
    options = parser.parse_args()
    cases = [c for c in load()["cases"] if not options.case or c["name"] in options.case]
    fake = ReplayBroker(options.endpoint)
    fake.expect(cases)
    print(f"serving {sum(len(c['exchanges']) for c in cases)} exchanges on {options.endpoint}")
    deadline = time.monotonic() + options.timeout
    with contextlib.suppress(KeyboardInterrupt):
        while not fake.done() and time.monotonic() < deadline:
            time.sleep(0.1)
    fake.stop()
    for line in fake.unexpected:
        print("unexpected request:", line)
    for line in fake.unused():
        print("never asked:", line)
    return 1 if fake.unexpected or fake.unused() else 0


if __name__ == "__main__":
    sys.exit(main())
