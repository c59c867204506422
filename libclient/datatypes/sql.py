"""``StatementType`` for ``Client.sql`` (``pyignite.datatypes.sql``)."""

from ._hints import Byte

__all__ = ["StatementType"]


class StatementType(Byte):
    ANY = 0
    SELECT = 1
    UPDATE = 2
