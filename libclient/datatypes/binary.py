"""pyignite's ``pyignite.datatypes.binary``: the record layouts of binary type metadata
(``get_binary_type`` answers), as field descriptions; the broker reads and writes them."""

from __future__ import annotations

from ._hints import Bool, Int, String
from .internal import Struct, StructArray

__all__ = ["binary_fields_struct", "body_struct", "enum_struct", "schema_fields_struct",
           "schema_struct"]

binary_fields_struct = StructArray([
    ("field_name", String),
    ("type_id", Int),
    ("field_id", Int),
])

body_struct = Struct([
    ("type_id", Int),
    ("type_name", String),
    ("affinity_key_field", String),
    ("binary_fields", binary_fields_struct),
    ("is_enum", Bool),
])

enum_struct = StructArray([
    ("literal", String),
    ("type_id", Int),
])

schema_fields_struct = StructArray([
    ("schema_field_id", Int),
])

schema_struct = StructArray([
    ("schema_id", Int),
    ("schema_fields", schema_fields_struct),
])
