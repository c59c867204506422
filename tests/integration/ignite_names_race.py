"""An Ignite 2.17 race without the broker (fuzz: a cache_names INTERNAL): CACHE_GET_NAMES
while another client starts and destroys caches. The node writes the count of a live view of
its caches, then the names it iterates from that view, so a cache destroyed in between gives
"count 1" and no name (not a test; run by hand against a dev cluster).

    .venv/bin/ignite-broker dev-cluster start --nodes 2 --base-port 13200
    .venv/bin/python -m tests.integration.ignite_names_race --port 13200 --seconds 60
    .venv/bin/ignite-broker dev-cluster stop --base-port 13200

Measured (6 December 2026, 2-core machine): 4 of 474,535 answers in 60 s had a count unlike
the names written. protocol.ops.parse_cache_get_names therefore reads every name the body
holds, whatever the count says.
"""

from __future__ import annotations

import argparse
import socket
import struct
import threading
import time

from pyignite import Client as PyIgnite

from protocol import NEED_DATA, ClientConnection, ConnectionConfig, HandshakeAccepted, OpCode


def _churn(port: int, stop: threading.Event) -> None:
    client = PyIgnite()
    client.connect("127.0.0.1", port)
    i = 0
    while not stop.is_set():
        client.get_or_create_cache(f"churn-{i % 4}").destroy()
        i += 1


def _names_written(body: bytes) -> int:
    """How many strings follow the count (each: type code, i32 length, bytes)."""
    pos, names = 4, 0
    while pos < len(body):
        pos += 5 + struct.unpack_from("<i", body, pos + 1)[0]
        names += 1
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="a node's thin-client port")
    parser.add_argument("--seconds", type=float, default=60.0)
    opts = parser.parse_args()
    stop = threading.Event()
    threading.Thread(target=_churn, args=(opts.port, stop), daemon=True).start()
    sock = socket.create_connection(("127.0.0.1", opts.port))
    conn = ClientConnection(ConnectionConfig())
    sock.sendall(conn.initiate())

    def next_event() -> object:
        while (event := conn.next_event()) is NEED_DATA:
            conn.receive_data(sock.recv(1 << 16))
        return event

    assert isinstance(next_event(), HandshakeAccepted)
    calls = disagreeing = 0
    end = time.monotonic() + opts.seconds
    while time.monotonic() < end:
        _, frame = conn.send_request(OpCode.CACHE_GET_NAMES, b"")
        sock.sendall(frame)
        body = bytes(next_event().body)  # type: ignore[attr-defined]
        count, written = struct.unpack_from("<i", body)[0], _names_written(body)
        calls += 1
        if count != written:
            disagreeing += 1
            print(f"count {count}, names written {written}", flush=True)
    stop.set()
    print(f"{calls} answers, {disagreeing} with a count unlike the names written")


if __name__ == "__main__":
    main()
