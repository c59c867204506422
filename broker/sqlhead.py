"""What an SQL statement's first words say: whether it starts or stops a cache, whether it
writes. A thin-client SQL request is one statement (Ignite refuses more, before running any),
so its first words, after spaces and comments, name it; only a bounded head is read."""

from __future__ import annotations

import re

_SPACE = re.compile(r"(?:\s++|--[^\n]*+|/\*(?:.*?\*/|.*+))*+", re.DOTALL)
_WORD = re.compile(r"[a-z_][a-z0-9_$]*+", re.IGNORECASE)
#: First words of the statements that start or stop a cache (Ignite's CREATE TABLE, DROP TABLE).
_CACHE_STATEMENTS = (frozenset({"create", "drop"}), frozenset({"table"}))
#: First words of the statements that store values (DELETE stores none).
_WRITES = (frozenset({"insert", "merge", "update"}),)
#: An empty binary literal, X'' (not the end of a string literal's escaped quote).
_EMPTY_BINARY = re.compile(r"(?<![\w'])[xX]''(?!')")
#: Characters of a statement read to find its first words (a constant cost per request).
HEAD = 4096


def starts_or_stops_a_cache(query: str) -> bool:
    """Whether a statement is a CREATE TABLE or DROP TABLE: a cache start or stop, with its
    partition map exchange. One whose first words are not within the head counts as one."""
    return _leads_with(query, _CACHE_STATEMENTS)


def writes(query: str) -> bool:
    """Whether a statement is an INSERT, MERGE or UPDATE. One whose first word is not within
    the head counts as one."""
    return _leads_with(query, _WRITES)


def has_empty_binary_literal(query: str) -> bool:
    """Whether the text holds an X'' literal (an empty byte array)."""
    return "''" in query and _EMPTY_BINARY.search(query) is not None


def _leads_with(query: str, words: tuple[frozenset[str], ...]) -> bool:
    """Whether the statement's first words are one of each of ``words`` in turn; True when
    the head ends before that is decided."""
    head = query[:HEAD]
    cut = len(head) < len(query)
    at = 0
    for expected in words:
        at = _SPACE.match(head, at).end()  # type: ignore[union-attr]
        word = _WORD.match(head, at)
        if word is None:
            return cut and at == len(head)  # spaces or comments to the end of the head
        if cut and word.end() == len(head):
            return True  # undecided within the head
        if word.group().lower() not in expected:
            return False
        at = word.end()
    return True
