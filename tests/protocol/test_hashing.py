"""Java String.hashCode and cache ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import cache_id, java_string_hash


def reference_hash(s: str) -> int:
    """Java's algorithm spelled out: UTF-16 units by hand, int arithmetic with wrap-around."""
    units = []
    for ch in s:
        cp = ord(ch)
        if cp >= 0x10000:
            cp -= 0x10000
            units += [0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)]
        else:
            units.append(cp)
    h = 0
    for u in units:
        h = (h * 31 + u) % 2**32
    return h - 2**32 if h >= 2**31 else h


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        ("", 0),
        ("a", 97),
        ("ab", 97 * 31 + 98),
        ("hello", 99162322),  # "hello".hashCode() in Java
        ("Hello", 69609650),
        ("polygenelubricants", -2**31),  # famous Java string whose hashCode is MIN_VALUE
        ("😀", 0xD83D * 31 + 0xDE00),  # two UTF-16 units, not one code point
        ("\ud800", 0xD800),  # a lone surrogate is one unit
    ],
)
def test_known_values(s: str, expected: int) -> None:
    assert java_string_hash(s) == expected


def test_astral_differs_from_code_point_hash() -> None:
    # pyignite hashes code points; Java hashes units. They differ outside the BMP.
    assert java_string_hash("😀") != 0x1F600


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("SQL_PUBLIC_PERSON", reference_hash("SQL_PUBLIC_PERSON")),
        ("SQL_PUBLIC_CITY", reference_hash("SQL_PUBLIC_CITY")),
        ("default", reference_hash("default")),
    ],
)
def test_cache_id_is_string_hash_without_lowercasing(name: str, expected: int) -> None:
    assert cache_id(name) == expected
    assert cache_id(name) != cache_id(name.lower()) or name == name.lower()


@given(st.text())
def test_matches_reference(s: str) -> None:
    h = java_string_hash(s)
    assert h == reference_hash(s)
    assert -(2**31) <= h < 2**31
