"""The handshake: the request for one protocol version, and parsing the server's answer to it."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Collection, Mapping

from ._events import HandshakeAccepted, HandshakeRejected
from ._version import V1_1_0, V1_4_0, V1_7_0, ProtocolVersion
from .binary import TypeCode, read_value, write_value
from .errors import RemoteProtocolError
from .features import Feature
from .status import StatusCode

__all__ = [
    "build_handshake",
    "decode_features",
    "encode_features",
    "parse_handshake_response",
]

HANDSHAKE_OP = 1  # an i8, unlike every other op code
CLIENT_CODE_THIN = 2  # 0 = ODBC, 1 = JDBC, 2 = thin client
_MAP_KIND_HASH_MAP = 1

_HEAD = struct.Struct("<ibhhhb")  # frame length, op, major, minor, patch, client code
_LEN = struct.Struct("<i")
_VERSION = struct.Struct("<hhh")
_STATUS = struct.Struct("<i")
_MAP_HEAD = struct.Struct("<bib")  # type code 25, pair count, map kind
_UUID = struct.Struct("<QQ")  # msb, lsb: each half little-endian


def encode_features(bits: Collection[int]) -> bytes:
    """Feature bits as a Java BitSet byte array: bit i is bit i%8 of byte i//8."""
    if not bits:
        return b""
    mask = bytearray(max(bits) // 8 + 1)
    for bit in bits:
        mask[bit >> 3] |= 1 << (bit & 7)
    return bytes(mask)


def decode_features(mask: bytes) -> frozenset[int]:
    """The set bit indexes of a BitSet byte array."""
    return frozenset(i * 8 + b for i, byte in enumerate(mask) for b in range(8) if byte >> b & 1)


def build_handshake(
    version: ProtocolVersion,
    features: Collection[int],
    username: str | None = None,
    password: str | None = None,
    user_attributes: Mapping[str, str] | None = None,
) -> bytes:
    """Return the framed handshake request for ``version``.

    Fields the version does not know are left out: the feature mask (and the user
    attributes it announces with bit 0) need 1.7.0, credentials need 1.1.0.
    """
    buf = bytearray(_HEAD.pack(0, HANDSHAKE_OP, *version, CLIENT_CODE_THIN))
    if version >= V1_7_0:
        write_value(buf, encode_features(features), TypeCode.BYTE_ARRAY)
        if Feature.USER_ATTRIBUTES in features:
            _write_user_attributes(buf, user_attributes)
    if username is not None and version >= V1_1_0:
        write_value(buf, username, TypeCode.STRING)
        write_value(buf, password, TypeCode.STRING)
    _LEN.pack_into(buf, 0, len(buf) - 4)
    return bytes(buf)


def _write_user_attributes(buf: bytearray, attributes: Mapping[str, str] | None) -> None:
    if attributes is None:
        buf.append(TypeCode.NULL)
        return
    pairs = bytearray(_MAP_HEAD.pack(TypeCode.MAP, len(attributes), _MAP_KIND_HASH_MAP))
    for key, value in attributes.items():
        write_value(pairs, key, TypeCode.STRING)
        write_value(pairs, value, TypeCode.STRING)
    buf += pairs


def parse_handshake_response(
    payload: memoryview,
    attempted: ProtocolVersion,
    requested_features: frozenset[int],
    candidates: Collection[ProtocolVersion],
) -> HandshakeAccepted | HandshakeRejected:
    """Parse the handshake response frame (without its length prefix).

    ``attempted`` is the version we asked for: it decides the layout. ``candidates`` are
    the versions we could fall back to. May raise struct.error on a truncated frame.
    """
    if not payload:
        raise RemoteProtocolError("empty handshake response")
    success = payload[0]
    if success == 1:
        return _parse_accepted(payload, attempted, requested_features)
    if success == 0:
        return _parse_rejected(payload, attempted, candidates)
    raise RemoteProtocolError(f"handshake response starts with {success}, expected 0 or 1")


def _parse_accepted(
    payload: memoryview, attempted: ProtocolVersion, requested: frozenset[int]
) -> HandshakeAccepted:
    pos = 1
    features: frozenset[int] = frozenset()
    if attempted >= V1_7_0:
        mask, pos = read_value(payload, pos)
        if mask is not None and not isinstance(mask, bytes):
            raise RemoteProtocolError(f"handshake features are {type(mask).__name__}, not byte[]")
        # The server already intersects; intersecting again keeps a confused server harmless.
        features = decode_features(mask or b"") & requested
    node_id = None
    if attempted >= V1_4_0:
        node_id, pos = _read_uuid_object(payload, pos)
    _expect_end(payload, pos, "handshake success")
    return HandshakeAccepted(attempted, features, node_id)


def _parse_rejected(
    payload: memoryview, attempted: ProtocolVersion, candidates: Collection[ProtocolVersion]
) -> HandshakeRejected:
    server_version = ProtocolVersion(*_VERSION.unpack_from(payload, 1))
    message, pos = read_value(payload, 1 + _VERSION.size)
    if message is not None and not isinstance(message, str):
        raise RemoteProtocolError(f"handshake error message is {type(message).__name__}")
    status = None
    if attempted >= V1_1_0:
        (status,) = _STATUS.unpack_from(payload, pos)
        pos += _STATUS.size
    _expect_end(payload, pos, "handshake failure")
    retry = None
    if (
        status != StatusCode.AUTH_FAILED
        and server_version < attempted
        and server_version in candidates
    ):
        retry = server_version
    return HandshakeRejected(server_version, message or "", status, retry)


def _read_uuid_object(payload: memoryview, pos: int) -> tuple[uuid.UUID | None, int]:
    code = payload[pos] if pos < len(payload) else None
    if code == TypeCode.NULL:
        return None, pos + 1
    if code != TypeCode.UUID:
        raise RemoteProtocolError(f"expected a UUID (type 10) at offset {pos}, got {code}")
    msb, lsb = _UUID.unpack_from(payload, pos + 1)
    return uuid.UUID(int=msb << 64 | lsb), pos + 1 + _UUID.size


def _expect_end(payload: memoryview, pos: int, what: str) -> None:
    if pos != len(payload):
        raise RemoteProtocolError(f"{len(payload) - pos} unexpected bytes after the {what}")
