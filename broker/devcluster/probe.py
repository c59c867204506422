"""Owns the dev-cluster's readiness checks: a raw thin-client handshake and a local port-free test.

The handshake is written inline on purpose (the project's protocol/ package is not a dependency
of the dev cluster). Wire format, all little-endian:
  request:  i32 length | i8 1 (handshake) | i16 major, i16 minor, i16 patch | i8 2 (thin client)
            [| string username | string password]      string = i8 9 | i32 byte length | utf-8
  response: i32 length | i8 1 = accepted
                       | i8 0 = rejected, then i16 x3 server version | string message | i32 status
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from broker.devcluster.errors import HandshakeFailed

PROTOCOL_VERSION = (1, 1, 0)
_OP_HANDSHAKE = 1
_CLIENT_CODE_THIN = 2
_TYPE_STRING = 9
_TYPE_NULL = 101
_MAX_RESPONSE = 1 << 20


@dataclass(frozen=True)
class HandshakeResult:
    """What the node answered to a handshake."""

    accepted: bool
    server_version: tuple[int, int, int] | None = None
    message: str | None = None
    status: int | None = None


def handshake(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 5.0,
) -> HandshakeResult:
    """Open a connection, send one handshake and return the node's answer.

    Raises HandshakeFailed when the connection or TLS fails, or the answer is cut short.
    """
    request = encode_handshake(username, password)
    try:
        with _connect(host, port, ssl_context, timeout) as sock:
            sock.sendall(request)
            (length,) = struct.unpack("<i", _recv_exact(sock, 4))
            if not 0 < length <= _MAX_RESPONSE:
                raise HandshakeFailed(f"{host}:{port}: bad handshake response length {length}")
            return decode_response(_recv_exact(sock, length))
    except (OSError, EOFError) as exc:
        raise HandshakeFailed(f"{host}:{port}: handshake failed: {exc!r}") from exc


def encode_handshake(username: str | None = None, password: str | None = None) -> bytes:
    """Bytes of a protocol-1.1.0 thin-client handshake request, length prefix included."""
    body = struct.pack("<bhhhb", _OP_HANDSHAKE, *PROTOCOL_VERSION, _CLIENT_CODE_THIN)
    if username is not None or password is not None:
        body += _encode_string(username or "") + _encode_string(password or "")
    return struct.pack("<i", len(body)) + body


def decode_response(body: bytes) -> HandshakeResult:
    """Decode a handshake response body (without its length prefix)."""
    if body[:1] == b"\x01":
        return HandshakeResult(accepted=True)
    try:
        version = struct.unpack_from("<hhh", body, 1)
        message, offset = _decode_string(body, 7)
        status = struct.unpack_from("<i", body, offset)[0] if len(body) >= offset + 4 else None
    except struct.error as exc:
        raise HandshakeFailed(f"malformed handshake rejection: {body!r}") from exc
    return HandshakeResult(False, (version[0], version[1], version[2]), message, status)


def client_ssl_context(
    ca_file: str, cert_file: str, key_file: str, key_password: str | None = None
) -> ssl.SSLContext:
    """A client TLS context that verifies the node against ca_file and presents a client cert."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.load_cert_chain(cert_file, key_file, password=key_password)
    return context


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port (SO_REUSEADDR ignores TIME_WAIT leftovers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _connect(host: str, port: int, ssl_context: ssl.SSLContext | None,
             timeout: float) -> Iterator[socket.socket]:
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname=host)
        yield sock
    finally:
        sock.close()


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise EOFError(f"connection closed after {len(chunks)} of {size} bytes")
        chunks += chunk
    return bytes(chunks)


def _encode_string(value: str) -> bytes:
    data = value.encode("utf-8")
    return struct.pack("<bi", _TYPE_STRING, len(data)) + data


def _decode_string(body: bytes, offset: int) -> tuple[str | None, int]:
    (type_code,) = struct.unpack_from("<b", body, offset)
    if type_code == _TYPE_NULL:
        return None, offset + 1
    if type_code != _TYPE_STRING:
        raise struct.error(f"unexpected type code {type_code} for a string")
    (length,) = struct.unpack_from("<i", body, offset + 1)
    start = offset + 5
    if length < 0 or start + length > len(body):
        raise struct.error("string runs past the end of the response")
    return body[start : start + length].decode("utf-8", errors="replace"), start + length
