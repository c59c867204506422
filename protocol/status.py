"""Status codes the server puts in error responses and handshake failures (Ignite ClientStatus)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["StatusCode"]


class StatusCode(IntEnum):
    """Server status codes. Events carry plain ints: a server may send codes not listed here."""

    SUCCESS = 0
    FAILED = 1
    INVALID_OP_CODE = 2
    FUNCTIONALITY_DISABLED = 100
    CACHE_DOES_NOT_EXIST = 1000
    CACHE_EXISTS = 1001
    TOO_MANY_CURSORS = 1010
    RESOURCE_DOES_NOT_EXIST = 1011
    SECURITY_VIOLATION = 1012
    TX_LIMIT_EXCEEDED = 1020
    TX_NOT_FOUND = 1021
    TOO_MANY_COMPUTE_TASKS = 1030
    AUTH_FAILED = 2000  # handshake only
