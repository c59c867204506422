"""pyignite's ``pyignite.constants`` (protocol versions, number limits, encodings, defaults), with
the same names and values; the stub itself takes none of them into account but the TLS ones
describe pyignite's defaults (TLS belongs to the broker here)."""

from __future__ import annotations

__all__ = [
    "AFFINITY_DELAY", "AFFINITY_RETRIES", "FNV1_OFFSET_BASIS", "FNV1_PRIME",
    "IGNITE_DEFAULT_HOST", "IGNITE_DEFAULT_PORT", "MAX_INT", "MAX_LONG", "MIN_INT", "MIN_LONG",
    "PROTOCOLS", "PROTOCOL_BYTE_ORDER", "PROTOCOL_CHAR_ENCODING", "PROTOCOL_STRING_ENCODING",
    "RECONNECT_BACKOFF_SEQUENCE", "RHF_ERROR", "RHF_TOPOLOGY_CHANGED", "SSL_DEFAULT_CIPHERS",  # noqa: F822
    "SSL_DEFAULT_VERSION",  # noqa: F822  (both made on first use by __getattr__)
]

PROTOCOLS = {(1, 7, 0), (1, 6, 0), (1, 5, 0), (1, 4, 0), (1, 3, 0), (1, 2, 0)}

PROTOCOL_VERSION_MAJOR = 1
PROTOCOL_VERSION_MINOR = 7
PROTOCOL_VERSION_PATCH = 1

MAX_LONG = 9223372036854775807
MIN_LONG = -9223372036854775808
MAX_INT = 2147483647
MIN_INT = -2147483648

PROTOCOL_BYTE_ORDER = "little"
PROTOCOL_STRING_ENCODING = "utf-8"
PROTOCOL_CHAR_ENCODING = "utf-16le"

FNV1_OFFSET_BASIS = 0x811C9DC5
FNV1_PRIME = 0x01000193

IGNITE_DEFAULT_HOST = "localhost"
IGNITE_DEFAULT_PORT = 10800

# response header flags
RHF_ERROR = 1
RHF_TOPOLOGY_CHANGED = 2

AFFINITY_DELAY = 0.01
AFFINITY_RETRIES = 32

RECONNECT_BACKOFF_SEQUENCE = [0, 1, 1, 2, 3, 5, 8, 13]


def __getattr__(name: str) -> object:
    # The TLS defaults need the ssl module: loaded only when asked for.
    if name in ("SSL_DEFAULT_VERSION", "SSL_DEFAULT_CIPHERS"):
        import ssl

        value = (ssl.PROTOCOL_TLSv1_2 if name == "SSL_DEFAULT_VERSION"
                 else getattr(ssl, "_DEFAULT_CIPHERS", None))
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
