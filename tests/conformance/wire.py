"""The conformance kit's vector format: msgpack values as tagged JSON, placeholders for the parts
that vary between runs, and the matcher both checkers use (the format is described in README.md).

Only msgpack is used here, not protocol.ipc: the kit checks the wire, whoever produced it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack

#: msgpack ext codes whose payload is raw bytes (not a msgpack value): UUID, DECIMAL.
RAW_EXT = {2: "hex", 3: "ascii"}
#: Placeholder types: the msgpack family a placeholder's actual value must belong to.
TYPES = ("nil", "bool", "int", "float", "str", "bin", "array", "map", "ext", "*")


class Mismatch(AssertionError):
    """An actual message differs from its vector."""


# -- msgpack <-> tagged JSON ------------------------------------------------------------------


def decode(data: bytes) -> Any:
    """One msgpack message as tagged JSON (lossless: bytes(encode(decode(b))) == b for
    messages packed with the smallest encodings, as msgpack-python packs them)."""
    value = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True,
                            unicode_errors="surrogatepass",
                            ext_hook=lambda code, payload: msgpack.ExtType(code, payload))
    return to_json(value)


def to_json(value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return {"$float": value if math.isfinite(value) else repr(value)}
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (surrogatepass texts in replies)
            return {"$str_utf8": value.encode("utf-8", "surrogatepass").hex()}
        return value
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: to_json(v) for k, v in value.items()}
        return {"$map": [[to_json(k), to_json(v)] for k, v in value.items()]}
    if isinstance(value, msgpack.ExtType):
        if value.code in RAW_EXT:
            form = RAW_EXT[value.code]
            text = value.data.hex() if form == "hex" else value.data.decode("ascii")
            return {"$ext": value.code, form: text}
        return {"$ext": value.code, "value": decode(value.data)}
    raise TypeError(f"no tagged JSON form for {type(value).__name__}")


def from_json(form: Any, fill: Any = None) -> Any:
    """The Python value msgpack packs back into the message; ``fill(placeholder)`` gives the
    value of each placeholder (default: its recorded value, ``was``)."""
    if isinstance(form, list):
        return [from_json(v, fill) for v in form]
    if not isinstance(form, dict):
        return form
    if is_placeholder(form):
        return fill(form) if fill is not None else from_json(form["was"])
    if "$float" in form:
        return float(form["$float"])
    if "$str_utf8" in form:
        return bytes.fromhex(form["$str_utf8"]).decode("utf-8", "surrogatepass")
    if "$bin" in form:
        return bytes.fromhex(form["$bin"])
    if "$map" in form:
        return {_hashable(from_json(k, fill)): from_json(v, fill) for k, v in form["$map"]}
    if "$ext" in form:
        code = form["$ext"]
        if "hex" in form:
            return msgpack.ExtType(code, bytes.fromhex(form["hex"]))
        if "ascii" in form:
            return msgpack.ExtType(code, form["ascii"].encode("ascii"))
        return msgpack.ExtType(code, encode(form["value"], fill))
    return {k: from_json(v, fill) for k, v in form.items()}


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def encode(form: Any, fill: Any = None) -> bytes:
    """The msgpack bytes of a tagged JSON form (placeholders filled by ``fill``)."""
    return msgpack.packb(from_json(form, fill), use_bin_type=True,
                         unicode_errors="surrogatepass")


# -- placeholders ------------------------------------------------------------------------------


def is_placeholder(form: Any) -> bool:
    return isinstance(form, dict) and ("$any" in form or "$var" in form)


def any_of(kind: str, was: Any, role: str | None = None) -> dict[str, Any]:
    """Any value of msgpack family ``kind``; ``was`` is the recorded one."""
    assert kind in TYPES, kind
    mark = {"$any": kind, "was": was}
    if role:
        mark["role"] = role
    return mark


def var(name: str, was: Any) -> dict[str, Any]:
    """A value the broker chooses (a handle): bound where first seen, equal wherever else."""
    return {"$var": name, "was": was}


def family(form: Any) -> str:
    """The msgpack family of a tagged JSON value."""
    if form is None:
        return "nil"
    if isinstance(form, bool):
        return "bool"
    if isinstance(form, int):
        return "int"
    if isinstance(form, str):
        return "str"
    if isinstance(form, list):
        return "array"
    for tag, name in (("$float", "float"), ("$str_utf8", "str"), ("$bin", "bin"),
                      ("$ext", "ext"), ("$map", "map")):
        if tag in form:
            return name
    return "map"


# -- matching ----------------------------------------------------------------------------------


def match(expected: Any, actual: Any, bindings: dict[str, Any], path: str = "") -> None:
    """Raise Mismatch unless ``actual`` (tagged JSON) fits ``expected`` (tagged JSON with
    placeholders). A ``$var`` seen for the first time is bound in ``bindings``."""
    if is_placeholder(expected):
        if "$var" in expected:
            name = expected["$var"]
            if name in bindings:
                _same(bindings[name], actual, path)
            else:
                bindings[name] = actual
            return
        kind = expected["$any"]
        if kind != "*" and family(actual) != kind:
            raise Mismatch(f"{path or '/'}: expected any {kind}, got {_show(actual)}")
        return
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            raise Mismatch(f"{path or '/'}: expected {_show(expected)}, got {_show(actual)}")
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            match(e, a, bindings, f"{path}/{i}")
        return
    if isinstance(expected, dict) and family(expected) == "map" and "$map" not in expected:
        if not isinstance(actual, dict) or family(actual) != "map" or "$map" in actual:
            raise Mismatch(f"{path or '/'}: expected a map, got {_show(actual)}")
        if set(expected) != set(actual):
            raise Mismatch(f"{path or '/'}: expected keys {sorted(expected)}, "
                           f"got {sorted(actual)}")
        for key in expected:
            match(expected[key], actual[key], bindings, f"{path}/{key}")
        return
    if isinstance(expected, dict) and "$ext" in expected and "value" in expected:
        if not isinstance(actual, dict) or actual.get("$ext") != expected["$ext"] \
                or "value" not in actual:
            raise Mismatch(f"{path or '/'}: expected {_show(expected)}, got {_show(actual)}")
        match(expected["value"], actual["value"], bindings, f"{path}/ext{expected['$ext']}")
        return
    if isinstance(expected, dict) and "$map" in expected:
        if not isinstance(actual, dict) or "$map" not in actual \
                or len(actual["$map"]) != len(expected["$map"]):
            raise Mismatch(f"{path or '/'}: expected {_show(expected)}, got {_show(actual)}")
        for i, (e, a) in enumerate(zip(expected["$map"], actual["$map"], strict=True)):
            match(e, a, bindings, f"{path}/$map{i}")
        return
    _same(expected, actual, path)


def _same(expected: Any, actual: Any, path: str) -> None:
    # bool is not int here: True == 1 in Python, not on the wire
    if family(expected) != family(actual) or expected != actual:
        raise Mismatch(f"{path or '/'}: expected {_show(expected)}, got {_show(actual)}")


def _show(form: Any) -> str:
    text = json.dumps(form, sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."


def fill_bound(bindings: dict[str, Any]) -> Any:
    """A ``fill`` for from_json that gives each ``$var`` its bound value (else the recorded
    one) and each ``$any`` its recorded value."""

    def fill(mark: dict[str, Any]) -> Any:
        if "$var" in mark and mark["$var"] in bindings:
            return from_json(bindings[mark["$var"]])
        return from_json(mark["was"])

    return fill
