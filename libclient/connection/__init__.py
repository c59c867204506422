"""What pyignite keeps in ``pyignite.connection`` that users touch: the protocol context and
feature flags (``client.protocol_context``).  The stub has no node connections of its own."""

from .bitmask_feature import BitmaskFeature
from .protocol_context import ProtocolContext

__all__ = ["BitmaskFeature", "ProtocolContext"]
