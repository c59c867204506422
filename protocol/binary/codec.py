"""The complete value codec: every codec module's table installed in the engine, in one place,
and the entry points to read and write typed values (import them from here or protocol.binary).

The codec modules declare their codecs as data and import only what they build on
(``_engine``, ``primitives``, ``standard``, ``registry``); nothing registers itself on import,
so any module of protocol.binary can be imported first.
"""

from __future__ import annotations

from . import arrays, complex, containers, primitives, standard
from ._engine import (
    DEFAULT_MAX_DEPTH,
    Buffer,
    decode_value,
    encode_value,
    infer_type_code,
    install,
    read_value,
    register_python_type,
    register_reader,
    register_writer,
    writable_codes,
    write_value,
)

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "Buffer",
    "decode_value",
    "encode_value",
    "infer_type_code",
    "read_value",
    "register_python_type",
    "register_reader",
    "register_writer",
    "writable_codes",
    "write_value",
]

# Order matters for the automatic mapping of Python types: earlier entries win (bool before
# int in primitives, datetime before date in standard).
for _module in (primitives, standard, arrays, complex, containers):
    install(_module.LEAF, _module.NESTED, _module.PYTHON_TYPES)
del _module
