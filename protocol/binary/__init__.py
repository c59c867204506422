"""Ignite's binary data format: type codes and the typed-value codec."""

from .primitives import (
    decode_value,
    encode_value,
    read_value,
    register_python_type,
    register_reader,
    register_writer,
    write_value,
)
from .typecodes import TypeCode

__all__ = [
    "TypeCode",
    "decode_value",
    "encode_value",
    "read_value",
    "register_python_type",
    "register_reader",
    "register_writer",
    "write_value",
]
