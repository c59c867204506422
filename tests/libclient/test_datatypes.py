"""libclient.datatypes mirrors pyignite.datatypes: same names at the same module paths, same
type codes, ids, names, defaults and constants, so ``sed s/pyignite/libclient/`` works."""

from __future__ import annotations

import datetime
import importlib

import pyignite.datatypes as pyd
import pytest

import libclient.datatypes as lcd

# pyignite's codec internals that have no meaning in a stub (the broker encodes).
INTERNAL = {"Struct", "StructArray", "tc_map", "infer_from_python", "infer_from_python_async"}

SUBMODULES = ["base", "cache_config", "cluster_state", "complex", "expiry_policy", "internal",
              "key_value", "null_object", "primitive", "primitive_arrays", "primitive_objects",
              "prop_codes", "sql", "standard", "transactions", "type_codes", "type_ids",
              "type_names"]


def _public(module) -> list[str]:
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    return [n for n in names if n not in INTERNAL and not isinstance(getattr(module, n), type(pyd))]


def test_every_pyignite_datatype_name_exists():
    missing = [n for n in _public(pyd) if not hasattr(lcd, n)]
    assert missing == []


# pyignite's codec machinery: wire structs and parsers with no meaning in a stub.
CODEC_INTERNALS = {"Conditional",
    "QueryFields", "FieldNameAliases", "Fields", "QueryIndexes", "QueryEntities",
    "CacheKeyConfiguration", "Struct", "StructArray", "IgniteDataTypeProps", "IgniteDataTypeMeta",
}


CONSTANT_MODULES = {"prop_codes", "type_codes", "type_ids", "type_names"}


def _defined_in(module) -> list[str]:
    """Classes and UPPER_CASE constants a pyignite module defines itself (not imports)."""
    names = []
    for name, obj in vars(module).items():
        if name.startswith("_") or name in CODEC_INTERNALS:
            continue
        own_class = isinstance(obj, type) and obj.__module__ == module.__name__
        constant = (module.__name__.rsplit(".", 1)[1] in CONSTANT_MODULES and name.isupper()
                    and isinstance(obj, int | str | bytes))
        if own_class or constant:
            names.append(name)
    return names


@pytest.mark.parametrize("sub", SUBMODULES)
def test_submodules_at_pyignites_paths(sub):
    theirs = importlib.import_module(f"pyignite.datatypes.{sub}")
    ours = importlib.import_module(f"libclient.datatypes.{sub}")
    names = _defined_in(theirs)
    assert [n for n in names if not hasattr(ours, n)] == []
    constants = [n for n in names if not isinstance(getattr(theirs, n), type)]
    assert {n: getattr(ours, n) for n in constants} == {n: getattr(theirs, n) for n in constants}


def _hint_classes():
    for name in _public(pyd):
        theirs = getattr(pyd, name)
        if isinstance(theirs, type) and hasattr(theirs, "type_code"):
            yield name


@pytest.mark.parametrize("name", list(_hint_classes()))
def test_hint_attributes_match(name):
    theirs, ours = getattr(pyd, name), getattr(lcd, name)
    assert ours.type_code == theirs.type_code
    assert ours.type_name == theirs.type_name
    assert ours.type_id == theirs.type_id
    assert getattr(ours, "default", None) == getattr(theirs, "default", None)
    assert getattr(ours, "pythonic", None) == getattr(theirs, "pythonic", None)
    consts = {k: getattr(theirs, k) for k in dir(theirs) if k.isupper() and not k.startswith("_")}
    assert {k: getattr(ours, k) for k in consts} == consts


@pytest.mark.parametrize("module, cls", [
    ("cache_config", "CacheMode"), ("cache_config", "CacheAtomicityMode"),
    ("cache_config", "WriteSynchronizationMode"), ("cache_config", "RebalanceMode"),
    ("cache_config", "PartitionLossPolicy"), ("cache_config", "IndexType"),
    ("sql", "StatementType"), ("key_value", "PeekModes"), ("cluster_state", "ClusterState"),
    ("transactions", "TransactionConcurrency"), ("transactions", "TransactionIsolation"),
])
def test_enum_constants_match(module, cls):
    theirs = getattr(importlib.import_module(f"pyignite.datatypes.{module}"), cls)
    ours = getattr(importlib.import_module(f"libclient.datatypes.{module}"), cls)
    names = [k for k in dir(theirs) if k.isupper()]
    assert names
    assert {k: int(getattr(ours, k)) for k in names} == {k: int(getattr(theirs, k)) for k in names}


def test_prop_codes_match():
    from pyignite.datatypes import prop_codes as theirs

    from libclient.datatypes import prop_codes as ours

    names = [n for n in dir(theirs) if n.startswith("PROP_")]
    assert {n: getattr(ours, n) for n in names} == {n: getattr(theirs, n) for n in names}


@pytest.mark.parametrize("kwargs", [
    {}, {"create": 1000}, {"update": datetime.timedelta(seconds=2)}, {"access": -1},
    {"create": -2, "update": -1, "access": 0},
])
def test_expiry_policy_accepts_what_pyignite_accepts(kwargs):
    theirs, ours = pyd.ExpiryPolicy(**kwargs), lcd.ExpiryPolicy(**kwargs)
    assert (ours.create, ours.update, ours.access) == (theirs.create, theirs.update,
                                                       theirs.access)
    assert ours == lcd.ExpiryPolicy(**kwargs)


@pytest.mark.parametrize("kwargs, error", [
    ({"create": 1.0}, TypeError), ({"access": "1"}, TypeError), ({"update": -5}, ValueError),
    ({"create": datetime.timedelta(seconds=-1)}, ValueError),
])
def test_expiry_policy_refuses_what_pyignite_refuses(kwargs, error):
    with pytest.raises(error):
        pyd.ExpiryPolicy(**kwargs)
    with pytest.raises(error):
        lcd.ExpiryPolicy(**kwargs)


def test_expiry_policy_positional_arguments_refused():
    with pytest.raises(TypeError):
        lcd.ExpiryPolicy(1000)  # type: ignore[misc]
    assert lcd.ExpiryPolicy(update=datetime.timedelta(milliseconds=1500)).as_millis() == [
        -2, 1500, -2]


def test_submodules_load_lazily_and_as_attributes():
    assert lcd.prop_codes.PROP_NAME == 0
    assert lcd.key_value.PeekModes.PRIMARY == 2
    with pytest.raises(AttributeError):
        lcd.no_such_module  # noqa: B018
