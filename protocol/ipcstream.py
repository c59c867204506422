"""The IPC envelope on a Unix stream socket (``unix://``): each msgpack message is preceded by
its length as a 4-byte big-endian unsigned int.  Sans-IO: bytes in, messages out."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from .ipc import ENV_ENDPOINT, default_runtime_dir

SCHEME = "unix://"
DEFAULT_STREAM_SOCKET_NAME = "broker.stream"
HEADER = struct.Struct(">I")
#: The largest message a reader accepts unless told otherwise (replies can be big pages).
DEFAULT_MAX_MESSAGE = 1 << 30


@dataclass(frozen=True, slots=True)
class Oversized:
    """A message longer than the reader's limit; its bytes are skipped, not buffered."""

    size: int


def frame(message: bytes) -> bytes:
    """``message`` with its length prefix, ready to write."""
    return HEADER.pack(len(message)) + message


class MessageReader:
    """Cuts a byte stream into messages; an oversized one is reported once and skipped."""

    __slots__ = ("_buf", "_skip", "max_message")

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversized message still to drop

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | Oversized]:
        """The messages completed by ``data``, in order."""
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        buf = self._buf
        if not buf and len(data) >= 4 and HEADER.unpack_from(data)[0] == len(data) - 4 \
                and len(data) - 4 <= self.max_message:
            return [data[4:]]  # the usual case: exactly one whole message
        buf += data
        out: list[bytes | Oversized] = []
        pos, end = 0, len(buf)
        while end - pos >= 4:
            (size,) = HEADER.unpack_from(buf, pos)
            available = end - pos - 4
            if size > self.max_message:
                out.append(Oversized(size))
                if available >= size:
                    pos += 4 + size
                    continue
                self._skip = size - available
                pos = end
                break
            if available < size:
                break
            out.append(bytes(buf[pos + 4:pos + 4 + size]))
            pos += 4 + size
        del buf[:pos]
        return out


def is_stream_endpoint(endpoint: str) -> bool:
    return endpoint.startswith(SCHEME)


def stream_path(endpoint: str) -> str:
    """The socket file of a ``unix://`` endpoint."""
    return endpoint[len(SCHEME):]


def default_stream_endpoint(environ: Mapping[str, str], uid: int) -> str:
    """The broker's default stream socket, next to its ZeroMQ one."""
    return f"{SCHEME}{default_runtime_dir(environ, uid)}/{DEFAULT_STREAM_SOCKET_NAME}"


#: systemd's RuntimeDirectory for the host's broker (systemd/ignite-broker.service).
SYSTEM_RUNTIME_DIR = "/run/ignite-broker"


def stub_runtime_dirs(environ: Mapping[str, str], uid: int) -> list[str]:
    """Where a stub (or ``ignite-broker admin``) looks for the host's broker, in order: the
    system broker's directory, then this user's own runtime directory.  The caller, which
    may touch the filesystem, picks the first that holds a socket."""
    return list(dict.fromkeys([SYSTEM_RUNTIME_DIR, default_runtime_dir(environ, uid)]))


def default_stub_endpoint(environ: Mapping[str, str], uid: int) -> str:
    """The endpoint a stub uses when none is given: $IGNITE_BROKER, else the stream socket
    (the broker binds it by default, next to the ZeroMQ one)."""
    if environ.get(ENV_ENDPOINT):
        return environ[ENV_ENDPOINT]
    return default_stream_endpoint(environ, uid)


__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "DEFAULT_STREAM_SOCKET_NAME",
    "HEADER",
    "SCHEME",
    "MessageReader",
    "Oversized",
    "default_stream_endpoint",
    "default_stub_endpoint",
    "frame",
    "is_stream_endpoint",
    "stream_path",
    "stub_runtime_dirs",
]
