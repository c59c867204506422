"""Protocol versions: the ProtocolVersion tuple and the versions whose wire format differs."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["KNOWN_VERSIONS", "ProtocolVersion"]


class ProtocolVersion(NamedTuple):
    """A thin-client protocol version; compares like a tuple, so ``v >= V1_4_0`` works."""

    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


V1_0_0 = ProtocolVersion(1, 0, 0)  # base protocol
V1_1_0 = ProtocolVersion(1, 1, 0)  # credentials in the handshake, status in its failure
V1_2_0 = ProtocolVersion(1, 2, 0)  # query-entity precision/scale
V1_3_0 = ProtocolVersion(1, 3, 0)
V1_4_0 = ProtocolVersion(1, 4, 0)  # response flags header, node id in the handshake
V1_5_0 = ProtocolVersion(1, 5, 0)  # transactions
V1_6_0 = ProtocolVersion(1, 6, 0)  # expiry policy per cache op
V1_7_0 = ProtocolVersion(1, 7, 0)  # feature bitmask in the handshake

# Newest first: the order a client tries them in.
KNOWN_VERSIONS: tuple[ProtocolVersion, ...] = (
    V1_7_0,
    V1_6_0,
    V1_5_0,
    V1_4_0,
    V1_3_0,
    V1_2_0,
    V1_1_0,
    V1_0_0,
)
