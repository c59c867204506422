"""Conversion between pyignite's Python shapes and the value classes protocol.ipc carries.

One module owns it, both ways:

- ``encode``: a Python value (with an optional pyignite type hint) -> what goes to the broker.
  The automatic mapping is pyignite's ``AnyDataObject.map_python_type``, footguns included (a
  plain dict is sent as an array of its keys, ``[1, 'a']`` as a Collection, an empty list is a
  TypeError), so that data stored through libclient equals data stored through pyignite.
- ``decode``: what the broker answers -> pyignite's shapes: Timestamp as ``(datetime, nanos)``,
  Date as a naive local ``datetime``, Time as ``timedelta``, enums as ``(type_id, ordinal)``,
  Collections as ``(kind, list)``, Maps as ``(kind, dict)`` (in the node's order), Object[]
  as ``(type_id, list)``, complex objects as instances of ``GenericObjectMeta`` classes.
  An object whose class is unknown raises ``NeedBinaryType``: the caller fetches the type's
  metadata and decodes again.
"""

from __future__ import annotations

import decimal
import uuid
from collections import OrderedDict
from datetime import date, datetime, time, timedelta

from protocol.binary.values import (
    BinaryObject,
    Collection,
    Date,
    EnumValue,
    Map,
    ObjectArray,
    Time,
    Timestamp,
    Typed,
)

from .binary import GenericObjectMeta, Registry, make_data_class, schema_id
from .datatypes import _hints as h
from .datatypes.base import IgniteDataType
from .datatypes.expiry_policy import ExpiryPolicy
from .datatypes.prop_codes import PROP_EXPIRY_POLICY, PROP_QUERY_ENTITIES
from .exceptions import ParameterError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    #: A complex-object class's encoding plan: per schema field (name, default, the Python
    #: type that goes bare, the hint), made once per class (``Codec._class_plan``).
    Plan = tuple[tuple[str, Any, type | None, Any], ...]
    #: What a class's objects are written with, made once per class and schema: (the schema
    #: it was made for, the plan, the type id, the schema id).
    ClassPlan = tuple[Any, Plan, int, int]

__all__ = ["Codec", "NeedBinaryType"]

_NONE = type(None)
_AS_IS = frozenset({str, int, float, bool, _NONE, bytes, uuid.UUID})
_NULLABLE_ARRAY_ITEMS = (str, datetime, timedelta, decimal.Decimal, uuid.UUID)
# Python element type -> Ignite array type code (pyignite's _python_array_map)
_ARRAY_CODE = {int: 15, float: 17, str: 20, bool: 19, uuid.UUID: 21, datetime: 22, date: 22,
               timedelta: 37, decimal.Decimal: 31}
# Hinted codes whose value goes as Typed(code, value) unchanged.
_TYPED_AS_IS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 18, 19, 20})
# Hinted codes whose natural Python type is what msgpack carries and the broker infers as that
# very code (Long, Double, Bool, String): a value of exactly that type goes bare, not Typed.
_NATURAL = {4: int, 6: float, 8: bool, 9: str}


class NeedBinaryType(Exception):
    """Decoding met a complex object whose class is not in the registry yet."""

    def __init__(self, value: BinaryObject) -> None:
        super().__init__(value.type_id)
        self.value = value


def _epoch_ms(value: datetime | date) -> int:
    if type(value) is date:
        value = datetime.combine(value, time())
    return int(value.timestamp() * 1000)  # type: ignore[union-attr]


def normalized_decimal(value: Any) -> Any:
    """A decimal as pyignite writes it: normalised (12.50 as 12.5), so that keys written by
    either client are the same BigDecimal (Java's equals counts the scale).  Unlike pyignite,
    without rounding to 28 digits."""
    if type(value) is not decimal.Decimal or not value.is_finite():
        return value
    return value.normalize(decimal.Context(prec=max(len(value.as_tuple().digits), 1)))


def _time_ms(value: timedelta) -> int:
    return int(value.total_seconds() * 1000)


def _is_hinted(value: Any) -> bool:
    return (type(value) is tuple and len(value) == 2 and isinstance(value[1], type)
            and issubclass(value[1], IgniteDataType))


def _is_iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _subtype(items: list[Any]) -> type | None:
    """pyignite's ``AnyDataObject.get_subtype``: the one element type of a list, or None."""
    it = iter(items)
    first: type = _NONE
    for item in it:
        if item is not None:
            first = type(item)
            break
    if first is _NONE:
        raise TypeError("Can not represent an empty iterable or an iterable of `NoneType` "
                        "in Ignite type.")
    allow_none = first in _NULLABLE_ARRAY_ITEMS
    if all(isinstance(x, first) or (x is None and allow_none) for x in it):
        return first
    return None


class Codec:
    """Encoder/decoder bound to a client's class registry.

    ``encode`` records the complex-object classes it wrote in ``written`` so the caller can
    register their schemas first, as pyignite does on write.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._plans: dict[type, ClassPlan] = {}

    # -- encoding ----------------------------------------------------------------------------

    def encode(self, value: Any, hint: Any = None, written: list[type] | None = None) -> Any:
        if written is None:
            written = []
        if hint is not None:
            return self._hinted(value, hint, written)
        return self._infer(value, written)

    def _infer(self, value: Any, written: list[type]) -> Any:
        t = type(value)
        if t in _AS_IS:
            return value
        if t is decimal.Decimal:
            return normalized_decimal(value)
        if t is bytearray:
            return bytes(value)
        if t is datetime or t is date:
            return Date(_epoch_ms(value))
        if t is timedelta:
            return Time(_time_ms(value))
        if _is_hinted(value):
            return self._hinted(value[0], value[1], written)
        if isinstance(t, GenericObjectMeta):
            return self._object(value, written)
        if _is_iterable(value):
            return self._iterable(value, written)
        raise TypeError(f"Type `{t}` is invalid.")

    def _iterable(self, value: Any, written: list[type]) -> Any:
        if type(value) is dict:
            _warn_dict()
        items = list(value)
        sub = _subtype(items)
        code = _ARRAY_CODE.get(sub)  # type: ignore[arg-type]
        if code is not None:
            if sub is int:  # pyignite writes [1, True] as long[] [1, 1]
                return Typed(code, [None if x is None else int(x) for x in items])
            return Typed(code, [self._infer(x, written) for x in items])
        if sub is None and len(items) == 2 and isinstance(items[0], int):
            kind, payload = items
            if isinstance(payload, dict):
                return Map(kind, [(self._infer(k, written), self._infer(v, written))
                                  for k, v in payload.items()])
            if _is_iterable(payload):
                return Collection(kind, [self._infer(x, written) for x in payload])
        raise TypeError(f"Type `array of {sub}` is invalid")

    def _hinted(self, value: Any, hint: Any, written: list[type]) -> Any:
        code = getattr(hint, "type_code", None)
        if not isinstance(code, bytes | int):
            if hint is h.Null:
                return None
            raise ParameterError(f"{hint!r} is not a type hint from libclient.datatypes")
        code = code[0] if isinstance(code, bytes) else code
        if value is None or code == 101:
            return None
        if code in _TYPED_AS_IS:
            return Typed(code, list(value) if code >= 13 else value)
        convert = _HINTED.get(code)
        if convert is None:
            raise ParameterError(f"values of type {hint.__name__} cannot be sent through the "
                                 "broker")
        return convert(self, value, written)

    def _object(self, value: Any, written: list[type]) -> BinaryObject:
        cls = type(value)
        _, plan, type_id, _ = self._class_plan(cls)
        fields = {}
        for name, default, bare, hint in plan:
            field_value = getattr(value, name, default)
            if field_value is None or type(field_value) is bare:
                fields[name] = field_value  # what _hinted would send, minus the Typed
            else:
                fields[name] = self._hinted(field_value, hint, written)
        written.append(cls)
        return BinaryObject(type_id, fields, type_name=cls.type_name)

    def ids(self, cls: Any) -> tuple[int, int]:
        """The type id and schema id of a complex-object class (hashed once, not per object)."""
        _, _, type_id, schema_id = self._class_plan(cls)
        return type_id, schema_id

    def _class_plan(self, cls: Any) -> ClassPlan:
        """The class's encoding plan and ids, made on its first object (again if its schema
        was replaced)."""
        schema = cls._schema
        cached = self._plans.get(cls)
        if cached is not None and cached[0] is schema:
            return cached
        plan = tuple((name, getattr(hint, "default", None), _bare_type(hint), hint)
                     for name, hint in schema.items())
        made = (schema, plan, cls.type_id, cls.schema_id)
        self._plans[cls] = made
        return made

    # -- decoding ----------------------------------------------------------------------------

    def decode(self, value: Any) -> Any:
        t = type(value)
        if t in _AS_IS:
            return value
        if t is list:
            return [self.decode(x) for x in value]
        decoder = _DECODERS.get(t)
        if decoder is not None:
            return decoder(self, value)
        if t is dict:
            return {self.decode(k): self.decode(v) for k, v in value.items()}
        return value

    def _decode_object(self, value: BinaryObject) -> Any:
        cls = self.registry.find(value.type_id, schema_id(value.fields))
        if cls is None:
            raise NeedBinaryType(value)
        obj = cls()
        for name in cls._schema:  # type: ignore[attr-defined]
            if name in value.fields:
                setattr(obj, name, self.decode(value.fields[name]))
        return obj

    def adopt(self, value: BinaryObject) -> type:
        """A class for an object the cluster has no metadata for: its fields, inferred hints."""
        schema = OrderedDict((name, _hint_of(v)) for name, v in value.fields.items())
        cls = make_data_class(value.type_name or f"BinaryObject{value.type_id}", schema,
                              value.type_id)
        return self.registry.add(cls, replace=False)

    # -- cache configuration -----------------------------------------------------------------

    def encode_config(self, settings: dict[int, Any]) -> dict[int, Any]:
        config = {}
        for code, value in settings.items():
            if code == PROP_EXPIRY_POLICY:
                value = value.as_millis() if value else None
            elif code == PROP_QUERY_ENTITIES and value:
                value = [self._entity(e) for e in value]
            config[int(code)] = value
        return config

    def _entity(self, entity: dict[str, Any]) -> dict[str, Any]:
        entity = dict(entity)
        fields = []
        for field in entity.get("query_fields") or ():
            field = dict(field)
            if field.get("default_value") is not None:
                field["default_value"] = self.encode(field["default_value"])
            fields.append(field)
        if "query_fields" in entity:
            entity["query_fields"] = fields
        return entity

    def decode_config(self, raw: dict[Any, Any]) -> dict[int, Any]:
        config = {}
        for code, value in raw.items():
            code = int(code)
            if code == PROP_EXPIRY_POLICY:
                config[code] = ExpiryPolicy.from_millis(value)
            else:
                config[code] = self.decode(value)
        return config


def _bare_type(hint: Any) -> type | None:
    """The Python type whose values of a field hinted ``hint`` go bare (None: none do)."""
    code = getattr(hint, "type_code", None)
    if isinstance(code, bytes):
        code = code[0]
    return _NATURAL.get(code) if type(code) is int else None


def _warn_dict() -> None:
    import warnings

    warnings.warn("a plain dict is stored as an array of its keys (pyignite's mapping): its "
                  "values are lost; send (MapObject.HASH_MAP, d) to store a map",
                  stacklevel=5)


def _hint_of(value: Any) -> type:
    t = type(value)
    if isinstance(value, BinaryObject):
        return h.BinaryObject
    return {int: h.LongObject, float: h.DoubleObject, str: h.String, bool: h.BoolObject,
            bytes: h.ByteArrayObject, uuid.UUID: h.UUIDObject, decimal.Decimal: h.DecimalObject,
            Date: h.DateObject, Time: h.TimeObject, Timestamp: h.TimestampObject,
            EnumValue: h.EnumObject, Collection: h.CollectionObject, Map: h.MapObject,
            ObjectArray: h.ObjectArrayObject, list: h.ObjectArrayObject}.get(t, h.Null)


def _bytes(codec: Codec, value: Any, written: list[type]) -> Typed:
    if isinstance(value, bytes | bytearray):
        return Typed(12, bytes(value))
    return Typed(12, bytes(x & 0xFF for x in value))


def _timestamp(value: Any) -> Timestamp:
    if isinstance(value, datetime):
        return Timestamp(_epoch_ms(value), 0)
    moment, nanos = value
    return Timestamp(_epoch_ms(moment), nanos)


def _seq(convert: Any) -> Any:
    return lambda codec, value, written: [None if x is None else convert(x) for x in value]


_HINTED: dict[int, Any] = {
    10: lambda c, v, w: v,
    11: lambda c, v, w: Date(_epoch_ms(v)),
    12: _bytes,
    21: lambda c, v, w: Typed(21, list(v)),
    22: lambda c, v, w: Typed(22, _seq(lambda x: Date(_epoch_ms(x)))(c, v, w)),
    23: lambda c, v, w: ObjectArray(v[0], [c._infer(x, w) for x in v[1]]),
    24: lambda c, v, w: Collection(v[0], [c._infer(x, w) for x in v[1]]),
    25: lambda c, v, w: Map(v[0], [(c._infer(k, w), c._infer(x, w)) for k, x in v[1].items()]),
    28: lambda c, v, w: EnumValue(v[0], v[1]),
    29: lambda c, v, w: Typed(29, [v[0], [EnumValue(t, o) for t, o in v[1]]]),
    30: lambda c, v, w: normalized_decimal(v),
    31: lambda c, v, w: Typed(31, [normalized_decimal(x) for x in v]),
    33: lambda c, v, w: _timestamp(v),
    34: lambda c, v, w: Typed(34, _seq(_timestamp)(c, v, w)),
    36: lambda c, v, w: Time(_time_ms(v)),
    37: lambda c, v, w: Typed(37, _seq(lambda x: Time(_time_ms(x)))(c, v, w)),
    38: lambda c, v, w: Typed(38, EnumValue(v[0], v[1], binary=True)),
    103: lambda c, v, w: c._object(v, w),
}

_DECODERS: dict[type, Any] = {
    Timestamp: lambda c, v: (datetime.fromtimestamp(v.epoch_ms / 1000), v.nanos),
    Date: lambda c, v: datetime.fromtimestamp(v.epoch_ms / 1000),
    Time: lambda c, v: timedelta(milliseconds=v.ms),
    EnumValue: lambda c, v: (v.type_id, v.ordinal),
    Collection: lambda c, v: (v.kind, [c.decode(x) for x in v.items]),
    # A plain dict for both kinds: what pyignite 0.6.1 returns (its OrderedDict branch for
    # LINKED_HASH_MAP never triggers); dicts keep the order anyway.
    Map: lambda c, v: (v.kind, {c.decode(k): c.decode(x) for k, x in v.items}),
    ObjectArray: lambda c, v: (v.type_id, [c.decode(x) for x in v.items]),
    BinaryObject: Codec._decode_object,
    Typed: lambda c, v: c.decode(v.value),
}
