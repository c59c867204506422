"""``ProtocolContext`` (``pyignite.connection.protocol_context``): the thin-client protocol
version and features the broker's node connections speak, as ``hello`` reports them."""

from __future__ import annotations

from .bitmask_feature import BitmaskFeature

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ProtocolContext"]


class ProtocolContext:
    def __init__(self, version: tuple[int, ...], features: BitmaskFeature | None = None) -> None:
        self._version = tuple(version)
        self._features = features
        self._ensure_consistency()

    def __hash__(self) -> int:
        return hash((self._version, self._features))

    def __eq__(self, other: Any) -> bool:
        return (isinstance(other, ProtocolContext) and self.version == other.version
                and self.features == other.features)

    def __str__(self) -> str:
        return f"ProtocolContext(version={self._version}, features={self._features})"

    __repr__ = __str__

    def _ensure_consistency(self) -> None:
        if not self.is_feature_flags_supported():
            self._features = None

    def copy(self) -> ProtocolContext:
        return ProtocolContext(self.version, self.features)

    @property
    def version(self) -> tuple[int, ...]:
        return self._version

    @version.setter
    def version(self, version: tuple[int, ...]) -> None:
        self._version = tuple(version)
        self._ensure_consistency()

    @property
    def features(self) -> BitmaskFeature | None:
        return self._features

    @features.setter
    def features(self, features: BitmaskFeature | None) -> None:
        self._features = features
        self._ensure_consistency()

    def is_partition_awareness_supported(self) -> bool:
        return self.version >= (1, 4, 0)

    def is_status_flags_supported(self) -> bool:
        return self.version >= (1, 4, 0)

    def is_transactions_supported(self) -> bool:
        return self.version >= (1, 6, 0)

    def is_feature_flags_supported(self) -> bool:
        return self.version >= (1, 7, 0)

    def is_cluster_api_supported(self) -> bool:
        return bool(self.features and BitmaskFeature.CLUSTER_API in self.features)

    def is_expiry_policy_supported(self) -> bool:
        return self.version >= (1, 6, 0)
