"""A small in-process stand-in for ignite-broker that speaks the real IPC schema (protocol.ipc)
over a real ROUTER socket (ipc://) or a real Unix stream listener (unix://, messages framed as
protocol.ipcstream frames them), with a dict for a cluster: enough to test libclient's
transports, specs and value handling without Ignite.  Behaviour switches (``silent_ops``,
``delay``) let tests provoke timeouts; ``stop()`` + a new FakeBroker on the same endpoint is
a restart."""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from typing import Any

import zmq

if __name__ == "__main__":  # run as a script: make the repository importable
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from protocol import ipc
from protocol.binary.values import BinaryObject
from protocol.ipcstream import MessageReader, is_stream_endpoint, stream_path
from protocol.ipcstream import frame as stream_frame

NODE = "127.0.0.1:10800"


class ServerError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FakeBroker:
    def __init__(self, endpoint: str, *, store: dict | None = None) -> None:
        self.endpoint = endpoint
        self.caches: dict[str, dict[bytes, tuple[Any, Any]]] = store if store is not None else {}
        self.requests: list[tuple[bytes, str, dict]] = []
        self.silent_ops: set[str] = set()  # never answered
        self.delay: dict[str, float] = {}
        self.cursors: dict[int, tuple[bytes, list, int]] = {}
        self.txs: dict[int, tuple[bytes, list]] = {}
        self.types: dict[int, dict] = {}
        self.state = 1
        self.wal: dict[str, bool] = {}
        self.hello_extra: dict[str, Any] = {}
        self._ids = itertools.count(1)
        stream = is_stream_endpoint(endpoint)
        self._wire = _StreamWire(endpoint) if stream else _RouterWire(endpoint)
        self._stop = threading.Event()
        self._later: list[tuple[float, bytes, bytes]] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def ops(self) -> list[str]:
        return [op for _, op, _ in self.requests]

    # -- loop -------------------------------------------------------------------------------

    def _serve(self) -> None:
        wire = self._wire
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                for item in [x for x in self._later if x[0] <= now]:
                    self._later.remove(item)
                    wire.send(item[1], item[2])
                for peer, frame in wire.receive(10):
                    self._serve_one(peer, frame)
        finally:
            wire.close()

    def _serve_one(self, peer: bytes, frame: bytes) -> None:
        request = ipc.unpack_request(frame)
        self.requests.append((peer, request.op, request.args))
        if request.op in self.silent_ops:
            return
        status, payload = self._handle(peer, request.op, request.args)
        reply = ipc.pack_reply(request.request_id, status, payload)
        delay = self.delay.get(request.op, 0.0)
        if delay:
            self._later.append((time.monotonic() + delay, peer, reply))
        else:
            self._wire.send(peer, reply)

    def _handle(self, peer: bytes, op: str, args: dict) -> tuple[int, Any]:
        handler = getattr(self, "op_" + op, None)
        if handler is None:
            return ipc.Status.UNKNOWN_OP, ipc.error_payload("unknown_op", f"unknown op {op!r}")
        try:
            return ipc.Status.OK, handler(peer, args)
        except ServerError as exc:
            return ipc.Status.SERVER_ERROR, ipc.error_payload(
                "server_error", str(exc), server_status=exc.status)
        except (KeyError, TypeError, ValueError) as exc:
            return ipc.Status.BAD_REQUEST, ipc.error_payload("bad_request", repr(exc))

    # -- ops --------------------------------------------------------------------------------

    def op_hello(self, peer: bytes, args: dict) -> dict:
        foreign = [n for n in args.get("nodes") or [] if n != NODE]
        if foreign:
            raise ValueError(f"{foreign[0]}: not a node of the cluster this broker serves")
        return {"broker_version": "fake", "ipc_version": 1, "pid": 0, "nodes": [NODE],
                "nodes_ready": 1, **self.hello_extra}

    def op_ping(self, peer: bytes, args: dict) -> None:
        return None

    def _cache(self, args: dict) -> dict:
        name = args["cache"]
        if name not in self.caches:
            raise ServerError(1000, f"Cache does not exist [cacheId={hash(name)}]")
        return self.caches[name]

    def _writes(self, peer: bytes, args: dict) -> dict:
        """The cache, or a transaction's private copy of it."""
        cache = self._cache(args)
        tx = args.get("tx")
        if tx is None:
            return cache
        owner, copies = self.txs[tx]
        if owner != peer:
            raise ServerError(1, "transaction belongs to another socket")
        for name, copy in copies:
            if name == args["cache"]:
                return copy
        copy = dict(cache)
        copies.append((args["cache"], copy))
        return copy

    @staticmethod
    def _k(key: Any) -> bytes:
        return ipc.pack(key)

    def op_cache_get_or_create(self, peer: bytes, args: dict) -> None:
        name = args["name"] if "name" in args else args["config"][0]
        self.caches.setdefault(name, {})

    def op_cache_create(self, peer: bytes, args: dict) -> None:
        name = args["name"] if "name" in args else args["config"][0]
        if name in self.caches:
            raise ServerError(1001, f"Cache already exists [cacheName={name}]")
        self.caches[name] = {}

    def op_cache_names(self, peer: bytes, args: dict) -> list:
        return sorted(self.caches)

    def op_cache_destroy(self, peer: bytes, args: dict) -> None:
        self._cache(args)
        del self.caches[args["cache"]]

    def op_cache_config(self, peer: bytes, args: dict) -> dict:
        self._cache(args)
        return {0: args["cache"], 1: 2, 3: 0, 407: None,
                200: [{"value_type_name": "Thing", "table_name": "THING", "query_fields": []}]}

    def op_cache_get(self, peer: bytes, args: dict) -> Any:
        entry = self._writes(peer, args).get(self._k(args["key"]))
        return entry[1] if entry else None

    def op_cache_put(self, peer: bytes, args: dict) -> None:
        self._writes(peer, args)[self._k(args["key"])] = (args["key"], args["value"])

    def op_cache_get_all(self, peer: bytes, args: dict) -> list:
        cache = self._writes(peer, args)
        return [list(cache[self._k(k)]) for k in args["keys"] if self._k(k) in cache]

    def op_cache_put_all(self, peer: bytes, args: dict) -> None:
        cache = self._writes(peer, args)
        for key, value in args["pairs"]:
            cache[self._k(key)] = (key, value)

    def op_cache_contains_key(self, peer: bytes, args: dict) -> bool:
        return self._k(args["key"]) in self._writes(peer, args)

    def op_cache_contains_keys(self, peer: bytes, args: dict) -> bool:
        cache = self._writes(peer, args)
        return all(self._k(k) in cache for k in args["keys"])

    def op_cache_get_and_put(self, peer: bytes, args: dict) -> Any:
        old = self.op_cache_get(peer, args)
        self.op_cache_put(peer, args)
        return old

    def op_cache_put_if_absent(self, peer: bytes, args: dict) -> bool:
        if self.op_cache_contains_key(peer, args):
            return False
        self.op_cache_put(peer, args)
        return True

    def op_cache_get_and_put_if_absent(self, peer: bytes, args: dict) -> Any:
        old = self.op_cache_get(peer, args)
        if old is None:
            self.op_cache_put(peer, args)
        return old

    def op_cache_replace(self, peer: bytes, args: dict) -> bool:
        if not self.op_cache_contains_key(peer, args):
            return False
        self.op_cache_put(peer, args)
        return True

    def op_cache_get_and_replace(self, peer: bytes, args: dict) -> Any:
        old = self.op_cache_get(peer, args)
        if old is not None:
            self.op_cache_put(peer, args)
        return old

    def op_cache_get_and_remove(self, peer: bytes, args: dict) -> Any:
        old = self.op_cache_get(peer, args)
        self._writes(peer, args).pop(self._k(args["key"]), None)
        return old

    def op_cache_remove_key(self, peer: bytes, args: dict) -> bool:
        return self._writes(peer, args).pop(self._k(args["key"]), None) is not None

    def op_cache_remove_keys(self, peer: bytes, args: dict) -> None:
        cache = self._writes(peer, args)
        for key in args["keys"]:
            cache.pop(self._k(key), None)

    def op_cache_remove_all(self, peer: bytes, args: dict) -> None:
        self._writes(peer, args).clear()

    op_cache_clear = op_cache_remove_all
    op_cache_clear_keys = op_cache_remove_keys

    def op_cache_clear_key(self, peer: bytes, args: dict) -> None:
        self._writes(peer, args).pop(self._k(args["key"]), None)

    def op_cache_remove_if_equals(self, peer: bytes, args: dict) -> bool:
        if self.op_cache_get(peer, args) == args["sample"]:
            return self.op_cache_remove_key(peer, args)
        return False

    def op_cache_replace_if_equals(self, peer: bytes, args: dict) -> bool:
        if self.op_cache_get(peer, args) == args["sample"]:
            self.op_cache_put(peer, args)
            return True
        return False

    def op_cache_get_size(self, peer: bytes, args: dict) -> int:
        assert all(isinstance(m, int) for m in args["peek_modes"])
        return len(self._writes(peer, args))

    # cursors
    def _page(self, cursor_id: int | None, rows: list, page_size: int) -> dict:
        page, rest = rows[:page_size], rows[page_size:]
        if rest:
            cursor_id = cursor_id or next(self._ids)
        return {"cursor": cursor_id if rest else None, "rows": page, "more": bool(rest),
                "rest": rest}

    def _open(self, peer: bytes, rows: list, page_size: int, extra: dict | None = None) -> dict:
        result = self._page(None, rows, page_size)
        rest = result.pop("rest")
        if result["more"]:
            self.cursors[result["cursor"]] = (peer, rest, page_size)
        result.update(extra or {})
        return result

    def op_scan(self, peer: bytes, args: dict) -> dict:
        rows = [list(kv) for kv in self._cache(args).values()]
        return self._open(peer, rows, args["page_size"])

    def op_select_row(self, peer: bytes, args: dict) -> dict:
        return self.op_scan(peer, args)

    def op_sql(self, peer: bytes, args: dict) -> dict:
        query = args["query"]
        if query.startswith("FAIL"):
            raise ServerError(1, "Failed to parse query")
        count = int(query.split()[-1]) if query.split()[-1].isdigit() else 3
        rows = [[i, f"row {i}", *args.get("args", [])] for i in range(count)]
        fields = ["ID", "NAME"] + [f"ARG{i}" for i in range(len(args.get("args", [])))]
        return self._open(peer, rows, args["page_size"], {"fields": fields})

    def op_cursor_next(self, peer: bytes, args: dict) -> dict:
        owner, rows, page_size = self.cursors.pop(args["cursor"])
        if owner != peer:
            raise ValueError("cursor belongs to another socket")
        result = self._page(args["cursor"], rows, page_size)
        if result["more"]:
            self.cursors[args["cursor"]] = (peer, result["rest"], page_size)
        del result["rest"], result["cursor"]
        return result

    def op_cursor_close(self, peer: bytes, args: dict) -> None:
        self.cursors.pop(args["cursor"], None)

    # transactions
    def op_tx_start(self, peer: bytes, args: dict) -> int:
        tx_id = next(self._ids)
        self.txs[tx_id] = (peer, [])
        return tx_id

    def op_tx_end(self, peer: bytes, args: dict) -> None:
        _, copies = self.txs.pop(args["tx"])
        if args["commit"]:
            for name, copy in copies:
                self.caches[name] = copy

    # cluster, types, nodes
    def op_cluster_get_state(self, peer: bytes, args: dict) -> int:
        return self.state

    def op_cluster_set_state(self, peer: bytes, args: dict) -> None:
        self.state = args["state"]

    def op_cluster_wal(self, peer: bytes, args: dict) -> bool:
        if args["enable"] is None:
            return self.wal.get(args["cache"], True)
        changed = self.wal.get(args["cache"], True) != args["enable"]
        self.wal[args["cache"]] = args["enable"]
        return changed

    def op_binary_type_put(self, peer: bytes, args: dict) -> None:
        """Stored in the broker's answer shape: Ignite's metadata (see broker/ops_admin.py)."""
        from libclient.binary import entity_id, schema_id

        type_id = entity_id(args["type_name"])
        known = self.types.setdefault(type_id, {
            "type_id": type_id, "type_name": args["type_name"],
            "affinity_key_field": args["affinity_key_field"], "is_enum": args["is_enum"],
            "fields": [], "enum_values": [], "schemas": {}})
        if args["is_enum"]:
            known["enum_values"] = args["schema"]
            return
        for name, code in args["schema"]:
            if all(f[0] != name for f in known["fields"]):
                known["fields"].append([name, code, entity_id(name)])
        names = [name for name, _ in args["schema"]]
        known["schemas"][schema_id(dict.fromkeys(names))] = [entity_id(n) for n in names]

    def op_binary_type_get(self, peer: bytes, args: dict) -> dict | None:
        return self.types.get(args["type"])

    def op_node_for(self, peer: bytes, args: dict) -> dict:
        return {"host": "127.0.0.1", "port": 10800, "node_id": "0000-node",
                "protocol_version": [1, 7, 0]}


class _RouterWire:
    """ipc://: a ROUTER socket; a peer is a routing id."""

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)

    def receive(self, timeout_ms: int) -> list[tuple[bytes, bytes]]:
        if not self.sock.poll(timeout_ms):
            return []
        peer, frame = self.sock.recv_multipart()
        return [(peer, frame)]

    def send(self, peer: bytes, reply: bytes) -> None:
        self.sock.send_multipart([peer, reply])

    def close(self) -> None:
        self.sock.close(linger=0)


class _StreamWire:
    """unix://: a listening Unix stream socket; a peer is one connection (its own session)."""

    def __init__(self, endpoint: str) -> None:
        path = stream_path(endpoint)
        if os.path.exists(path):  # left by a broker that was killed: a restart
            os.unlink(path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.conns: dict[bytes, tuple[socket.socket, MessageReader]] = {}
        self._ids = itertools.count(1)
        self.poller = zmq.Poller()
        self.poller.register(self.listener, zmq.POLLIN)

    def receive(self, timeout_ms: int) -> list[tuple[bytes, bytes]]:
        received = []
        for fd, _ in self.poller.poll(timeout_ms):
            if fd == self.listener.fileno():
                conn, _ = self.listener.accept()
                self.conns[b"stream-%d" % next(self._ids)] = (conn, MessageReader())
                self.poller.register(conn, zmq.POLLIN)
                continue
            for peer, (conn, reader) in list(self.conns.items()):
                if conn.fileno() == fd:
                    data = conn.recv(1 << 16)
                    if not data:
                        self._drop(peer)
                    received += [(peer, m) for m in reader.feed(data) if isinstance(m, bytes)]
        return received

    def send(self, peer: bytes, reply: bytes) -> None:
        if peer in self.conns:
            try:
                self.conns[peer][0].sendall(stream_frame(reply))
            except OSError:
                self._drop(peer)

    def _drop(self, peer: bytes) -> None:
        conn, _ = self.conns.pop(peer)
        self.poller.unregister(conn)
        conn.close()

    def close(self) -> None:
        for peer in list(self.conns):
            self._drop(peer)
        self.listener.close()


def object_value(type_name: str, fields: dict) -> BinaryObject:
    from libclient.binary import entity_id

    return BinaryObject(entity_id(type_name), fields, type_name=type_name)


def main() -> None:
    """Run a fake broker in this process until killed: ``python fakebroker.py ENDPOINT``."""
    import os
    import sys

    broker = FakeBroker(sys.argv[1])
    for op in filter(None, os.environ.get("FAKE_SILENT_OPS", "").split(",")):
        broker.silent_ops.add(op)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
