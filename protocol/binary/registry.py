"""Binary-type knowledge: BinaryType (the metadata of one type), the Registry of what the
cluster told us, and the CodecContext the value codec consults.

The Registry is filled from BINARY_TYPE_GET answers (``add``) and keyed by type id and by
(type id, schema id). It only ever holds what the server holds: the encoder does not add
to it: ``CodecContext.encode`` returns, with the bytes, the types they use that the registry
lacks, for the caller to register (BINARY_TYPE_PUT) and then ``add``. Everything it knows is dropped
by exactly one call, ``Registry.reset()`` (asyncpg's ``reload_schema_state``): after a
cluster restart, or when told by an ``UnknownSchema`` that keeps coming back.

The decode loop of a caller::

    while True:
        try:
            value = decode_value(body, ctx=ctx)
            break
        except UnknownSchema as exc:
            bt = fetch(BINARY_TYPE_GET, exc.type_id)   # protocol.binary.metadata
            if bt is None: raise                       # the cluster does not know it either
            ctx.registry.add(bt)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import LocalProtocolError
from ._engine import DEFAULT_MAX_DEPTH
from .typecodes import TypeCode

__all__ = ["BinaryType", "CodecContext", "Registry"]

FieldSpec = tuple[str, int, int]  # (name, type code, field id)


@dataclass(frozen=True)
class BinaryType:
    """The metadata of one binary type, as BINARY_TYPE_GET/PUT carry it.

    ``fields`` are (name, type code, field id); the type code is the field's binary type
    code (3 int, 9 String, 103 object ...), not a hash. ``schemas`` maps a schema id to
    its field ids in order. ``enum_values`` are (name, ordinal) when ``is_enum``.
    """

    type_id: int
    type_name: str
    affinity_key_field: str | None = None
    fields: list[FieldSpec] = field(default_factory=list)
    is_enum: bool = False
    enum_values: list[tuple[str, int]] = field(default_factory=list)
    schemas: dict[int, list[int]] = field(default_factory=dict)

    def field_names(self, schema_id: int) -> list[str]:
        """The field names of one schema, in order (KeyError for an unknown schema)."""
        by_id = {fid: name for name, _, fid in self.fields}
        return [by_id[fid] for fid in self.schemas[schema_id]]


class _TypeInfo:
    """A registered type, indexed for the codec's hot paths."""

    __slots__ = ("binary_type", "by_name", "names_by_id", "schema_names", "type_name")

    def __init__(self, bt: BinaryType) -> None:
        self.binary_type = bt
        self.type_name = bt.type_name
        self.by_name: dict[str, tuple[int, int]] = {n: (fid, code) for n, code, fid in bt.fields}
        self.names_by_id: dict[int, str] = {fid: n for n, _, fid in bt.fields}
        # schema id -> field names in footer order; None where the metadata lacks a name
        self.schema_names: dict[int, tuple[str, ...] | None] = {}
        for sid, ids in bt.schemas.items():
            names = tuple(self.names_by_id.get(fid, "") for fid in ids)
            self.schema_names[sid] = None if "" in names else names


class Registry:
    """Binary types by type id, and their schemas by (type id, schema id).

    Not thread-safe: one event loop owns it. ``reset()`` is the one way to forget.
    """

    def __init__(self) -> None:
        self._types: dict[int, _TypeInfo] = {}

    def add(self, bt: BinaryType) -> BinaryType:
        """Merge ``bt`` into what is known about its type (as the server merges a PUT):
        new fields, schemas and enum values are added, known ones kept. Returns the
        merged type."""
        old = self._types.get(bt.type_id)
        if old is not None:
            bt = _merge(old.binary_type, bt)
        self._types[bt.type_id] = _TypeInfo(bt)
        return bt

    def get(self, type_id: int) -> BinaryType | None:
        """The metadata of a type, or None."""
        info = self._types.get(type_id)
        return None if info is None else info.binary_type

    def schema(self, type_id: int, schema_id: int) -> tuple[int, ...] | None:
        """The field ids of a schema, in footer order, or None if unknown."""
        info = self._types.get(type_id)
        if info is None:
            return None
        ids = info.binary_type.schemas.get(schema_id)
        return None if ids is None else tuple(ids)

    def reset(self) -> None:
        """Forget every type and schema (the only way to drop cached metadata)."""
        self._types.clear()

    def __len__(self) -> int:
        return len(self._types)

    def __contains__(self, type_id: object) -> bool:
        return type_id in self._types

    def type_ids(self) -> list[int]:
        return list(self._types)

    def __repr__(self) -> str:
        schemas = sum(len(i.binary_type.schemas) for i in self._types.values())
        return f"<Registry {len(self._types)} types, {schemas} schemas>"

    def _info(self, type_id: int) -> _TypeInfo | None:
        return self._types.get(type_id)


def _merge(old: BinaryType, new: BinaryType) -> BinaryType:
    known = {fid for _, _, fid in old.fields}
    fields = list(old.fields) + [f for f in new.fields if f[2] not in known]
    literals = {name for name, _ in old.enum_values}
    enum_values = list(old.enum_values) + [e for e in new.enum_values if e[0] not in literals]
    schemas = dict(old.schemas)
    for sid, ids in new.schemas.items():
        schemas.setdefault(sid, list(ids))
    return BinaryType(
        type_id=old.type_id,
        type_name=new.type_name or old.type_name,
        affinity_key_field=new.affinity_key_field or old.affinity_key_field,
        fields=fields,
        is_enum=old.is_enum or new.is_enum,
        enum_values=enum_values,
        schemas=schemas,
    )


class CodecContext:
    """What the value codec needs beyond the bytes. Pass it as ``ctx=`` to read_value /
    write_value (and the op builders/parsers); complex objects cannot do without it.

    - ``registry``: the binary types known from the cluster (shared, long-lived).
    - ``compact_footer``: write complex objects with compact footers (offsets only; the
      server's default) or full ones (field ids too, readable without metadata).
    - ``max_depth``: nesting limit for containers and objects, both ways.

    Writing a complex object whose type, field or schema the registry lacks needs that
    metadata registered first: ``encode(build, ...)`` returns the bytes and those types (each
    a BinaryType holding only what is new); before sending the bytes, the caller registers
    each with BINARY_TYPE_PUT and then ``registry.add`` it. Compact footers are unreadable
    for the server without that; full footers still need it for field names and SQL.
    Encoding with ``ctx=`` directly instead collects them in ``pending`` until
    ``take_pending()``: a context is cheap, use one per such encode or drain it.
    """

    __slots__ = ("compact_footer", "max_depth", "pending", "registry")

    def __init__(
        self, registry: Registry, *, compact_footer: bool = True,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        if not isinstance(registry, Registry):
            raise LocalProtocolError(f"registry must be a Registry, got {type(registry).__name__}")
        if not isinstance(max_depth, int) or max_depth < 1:
            raise LocalProtocolError(f"max_depth must be a positive int, got {max_depth!r}")
        self.registry = registry
        self.compact_footer = bool(compact_footer)
        self.max_depth = max_depth
        self.pending: dict[int, BinaryType] = {}

    def encode(self, build: Callable[..., bytes], /, *args: Any,
               **kwargs: Any) -> tuple[bytes, list[BinaryType] | None]:
        """``build(*args, ctx=self, **kwargs)`` (an op builder or ``encode_value``) and the
        binary types its bytes need registered before they are sent (None: none). Nothing stays
        behind in the context, even when ``build`` fails."""
        pending = self.pending
        try:
            body = build(*args, ctx=self, **kwargs)
        except BaseException:
            pending.clear()
            raise
        if not pending:
            return body, None
        types = list(pending.values())
        pending.clear()
        return body, types

    def take_pending(self) -> list[BinaryType]:
        """The metadata to register before sending what was encoded; clears ``pending``."""
        pending = list(self.pending.values())
        self.pending.clear()
        return pending

    def note_schema(
        self, type_id: int, type_name: str, fields: list[FieldSpec], field_ids: tuple[int, ...],
        schema_id: int,
    ) -> None:
        """Record a schema the encoder used (with its fields) unless the registry has it."""
        info = self.registry._info(type_id)
        if info is not None and (schema_id in info.binary_type.schemas or not field_ids):
            return
        known = info.by_name if info is not None else {}
        new_fields = [f for f in fields if f[0] not in known]
        delta = BinaryType(type_id, type_name, fields=new_fields,
                           schemas={schema_id: list(field_ids)} if field_ids else {})
        old = self.pending.get(type_id)
        self.pending[type_id] = delta if old is None else _merge(old, delta)

    def __repr__(self) -> str:
        footer = "compact" if self.compact_footer else "full"
        return f"<CodecContext {self.registry!r} {footer} footers, {len(self.pending)} pending>"


# The field type code recorded for a field first seen holding None (Java's builder does
# the same: "Object").
OBJECT_FIELD = TypeCode.COMPLEX_OBJECT.value
