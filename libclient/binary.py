"""``GenericObjectMeta``: the metaclass of complex-object classes, pyignite-compatible but without
attrs; plus the Java-style ids (type, field, schema) that name a complex type and its schema."""

from __future__ import annotations

import re
from collections import OrderedDict

from protocol import hashing

from .datatypes._hints import ALLOWED_FIELD_TYPES
from .datatypes.base import IgniteDataTypeProps
from .exceptions import ParseError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["GenericObjectMeta", "entity_id", "java_hash", "schema_id", "type_class_name"]

#: Java's String.hashCode, as Ignite computes ids (protocol.hashing: two small modules).
java_hash = hashing.java_string_hash
java_lower = hashing.java_lower


def entity_id(name: str | int | None) -> int | None:
    """A type or field id: Ignite's hash of the lower-cased name (an int passes through).
    Unlike pyignite, names outside ASCII hash as the node does."""
    if name is None:
        return None
    return _name_id(name)


def _name_id(name: str | int) -> int:
    if isinstance(name, str):
        return hashing.type_id(name)
    if type(name) is int:  # not a bool
        return name
    raise TypeError(f"a type or field name is a str or an int id, not {name!r}")


def schema_id(schema: Any) -> int:
    """The FNV-1 schema id of a field list (a dict of field names, or an id that passes)."""
    if isinstance(schema, int):
        return schema
    return hashing.schema_id(_name_id(field_name) for field_name in schema or ())


# -- the metaclass ------------------------------------------------------------------------------


class GenericObjectProps(IgniteDataTypeProps):
    """Class-level and instance-level ``schema``, ``schema_id``, ``type_name``, ``type_id``."""

    @property
    def schema(self) -> OrderedDict[str, Any]:
        return OrderedDict(self._schema)  # type: ignore[attr-defined]

    @property
    def schema_id(self) -> int:
        return schema_id(self._schema)  # type: ignore[attr-defined]


class GenericObjectPropsMeta(type, GenericObjectProps):
    pass


class GenericObjectMeta(GenericObjectPropsMeta):
    """Complex (binary) object metaclass, used exactly like pyignite's::

        class Person(metaclass=GenericObjectMeta, type_name='Person',
                     schema=OrderedDict([('name', String), ('age', IntObject)])):
            pass

    Instances take the schema fields (and ``version``) as arguments with the hints' defaults,
    compare equal field by field, and print like pyignite's attrs-made classes.
    """

    _schema: OrderedDict[str, Any] | None = None
    _type_name: str | None = None
    version = None

    def __new__(mcs, name: str, base_classes: tuple[type, ...], namespace: dict[str, Any],
                **kwargs: Any) -> Any:
        namespace = dict(namespace)
        for attr, fn in _INSTANCE_METHODS.items():
            namespace.setdefault(attr, fn)
        namespace.setdefault("__hash__", None)
        if not any(issubclass(base, GenericObjectProps) for base in base_classes):
            base_classes = (GenericObjectProps, *base_classes)
        return super().__new__(mcs, name, base_classes, namespace)

    def __init__(cls, name: str, base_classes: tuple[type, ...], namespace: dict[str, Any],
                 type_name: str | None = None, schema: Any = None, **kwargs: Any) -> None:
        cls._type_name = type_name or cls.__name__
        cls._type_id = entity_id(cls._type_name)
        schema = schema if schema is not None else OrderedDict()
        for field_type in schema.values():
            if field_type not in ALLOWED_FIELD_TYPES:
                raise ParseError(f"Wrong binary field type: {field_type}")
        cls._schema = schema
        super().__init__(name, base_classes, namespace)


def _field_names(obj: Any) -> list[str]:
    return [*obj._schema, "version"]


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    names = _field_names(self)
    if len(args) > len(names):
        raise TypeError(f"__init__() takes {len(names) + 1} positional arguments "
                        f"but {len(args) + 1} were given")
    values = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names:
            raise TypeError(f"__init__() got an unexpected keyword argument '{key}'")
        if key in values:
            raise TypeError(f"__init__() got multiple values for argument '{key}'")
        values[key] = value
    for field_name, field_type in self._schema.items():
        object.__setattr__(self, field_name, values.get(
            field_name, getattr(field_type, "default", None)))
    object.__setattr__(self, "version", values.get("version", 1))


def _repr(self: Any) -> str:
    fields = ", ".join(f"{n}={getattr(self, n, None)!r}" for n in _field_names(self))
    return f"{type(self).__qualname__.rsplit('>.', 1)[-1]}({fields})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return all(getattr(self, n, None) == getattr(other, n, None) for n in _field_names(self))


def _ne(self: Any, other: Any) -> Any:
    result = _eq(self, other)
    return result if result is NotImplemented else not result


_INSTANCE_METHODS = {"__init__": _init, "__repr__": _repr, "__eq__": _eq, "__ne__": _ne}


# -- classes made for types nobody registered (pyignite's BaseClient._create_type_name) ---------

_IDENTIFIER = re.compile(r"[^0-9a-zA-Z_.+$]", re.UNICODE)
_IDENT_START = re.compile(r"^[^a-zA-Z_]+", re.UNICODE)


def _capitalize(s: str) -> str:
    return s[:1].upper() + s[1:]


def type_class_name(type_name: str) -> str:
    """A Python class name for an Ignite type name, sanitized as pyignite does it."""
    name = _IDENTIFIER.sub("", type_name)
    for delimiter in ("$", "+", "."):
        name = "".join(_capitalize(part) for part in name.split(delimiter))
    return _capitalize(_IDENT_START.sub("", name))


def make_data_class(type_name: str, schema: OrderedDict[str, Any],
                    type_id: int | None = None) -> type:
    """A generic class for a type read from the cluster.

    Unlike pyignite, the class keeps the *real* Ignite type name and id (pyignite derives them
    from the sanitized class name, which names another type when the name had dots).
    """
    cls = GenericObjectMeta(type_class_name(type_name) or "BinaryObject", (), {},
                            type_name=type_name, schema=schema)
    if type_id is not None:
        cls._type_id = type_id
    return cls


# -- the client's registry of complex-object classes --------------------------------------------


class Registry:
    """Complex-object classes by type id and schema id (pyignite's ``Client._registry``).

    Filled by ``register_binary_type``, by the classes of objects the application writes, and by
    classes made from the cluster's metadata for types read without a registered class.
    Plain dict operations only: safe to share between threads under the GIL.
    """

    def __init__(self) -> None:
        self._types: dict[int, dict[int, type]] = {}

    def find(self, type_id: int, s_id: int) -> type | None:
        return self._types.get(type_id, {}).get(s_id)

    def schemas(self, type_id: int) -> dict[int, type]:
        return self._types.setdefault(type_id, {})

    def add(self, cls: type, *, replace: bool = True) -> type:
        slot = self.schemas(cls.type_id)  # type: ignore[attr-defined]
        if replace:
            slot[cls.schema_id] = cls  # type: ignore[attr-defined]
            return cls
        return slot.setdefault(cls.schema_id, cls)  # type: ignore[attr-defined]

    def sync(self, type_id: int, type_info: dict[str, Any]) -> None:
        """Make classes for the schemas in a ``get_binary_type`` answer (keeping known ones)."""
        if not type_info.get("type_exists"):
            return
        for schema in type_info.get("schemas", ()):
            if self.find(type_id, schema_id(schema)) is None:
                self.add(make_data_class(type_info["type_name"], schema, type_id))
