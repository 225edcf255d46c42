"""SCIM filters (RFC 7644 §3.4.2.2) parsed into a small tree, then compiled to SQL per resource.

Supported: ``attrPath op value`` with ``eq ne co sw ew gt ge lt le``, ``attrPath pr``, joined
by ``and`` / ``or``, ``not (…)`` and parentheses. Attribute names and operators are
case-insensitive. Not supported (``invalidFilter``): value paths such as
``emails[type eq "work"]``. What each resource lets a filter name is in :mod:`idp.directory.scim`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

OPERATORS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le")
#: A filter longer than this is refused before parsing (no campus system needs more).
MAX_FILTER_LENGTH = 1000
MAX_DEPTH = 20
#: Lone UTF-16 surrogates (a JSON escape such as ``"\ud800"``): not text, and no database
#: driver can encode them as UTF-8 (the query would fail with a 500).
_SURROGATE = re.compile("[\ud800-\udfff]")


class FilterError(ValueError):
    """The filter cannot be parsed or asks for something unsupported (SCIM ``invalidFilter``)."""


@dataclass(frozen=True)
class Comparison:
    """``attribute op value`` (``value`` is None for ``pr``)."""

    attribute: str
    operator: str
    value: Any


@dataclass(frozen=True)
class Logical:
    """``left and right`` / ``left or right``."""

    operator: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Negation:
    """``not (inner)``."""

    inner: Node


Node = Comparison | Logical | Negation

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<paren>[()])
      | (?P<bracket>[\[\]])
      | (?P<word>[^\s()"\[\]]+)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise FilterError(f"cannot read the filter at character {position + 1}")
        kind = match.lastgroup or ""
        if kind == "bracket":
            raise FilterError("value paths (attr[...]) are not supported")
        tokens.append((kind, match.group(kind)))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek_word(self) -> str | None:
        if self.index < len(self.tokens) and self.tokens[self.index][0] == "word":
            return self.tokens[self.index][1].lower()
        return None

    def take(self) -> tuple[str, str]:
        if self.index >= len(self.tokens):
            raise FilterError("the filter ends too early")
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expression(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise FilterError("the filter is nested too deeply")
        node = self.conjunction(depth)
        while self.peek_word() == "or":
            self.index += 1
            node = Logical("or", node, self.conjunction(depth))
        return node

    def conjunction(self, depth: int) -> Node:
        node = self.factor(depth)
        while self.peek_word() == "and":
            self.index += 1
            node = Logical("and", node, self.factor(depth))
        return node

    def factor(self, depth: int) -> Node:
        kind, text = self.take()
        if kind == "paren" and text == "(":
            node = self.expression(depth + 1)
            if self.take() != ("paren", ")"):
                raise FilterError("a parenthesis is not closed")
            return node
        if kind == "word" and text.lower() == "not":
            if self.take() != ("paren", "("):
                raise FilterError("'not' must be followed by a parenthesised filter")
            inner = self.expression(depth + 1)
            if self.take() != ("paren", ")"):
                raise FilterError("a parenthesis is not closed")
            return Negation(inner)
        if kind != "word":
            raise FilterError(f"expected an attribute name, found {text}")
        attribute = text
        _, operator_text = self.take()
        operator = operator_text.lower()
        if operator == "pr":
            return Comparison(attribute, "pr", None)
        if operator not in OPERATORS:
            raise FilterError(f"unknown operator {operator_text}")
        return Comparison(attribute, operator, _value(self.take()))


def _value(token: tuple[str, str]) -> Any:
    kind, text = token
    if kind == "string":
        try:
            value = json.loads(text)
        except ValueError:
            raise FilterError(f"malformed string {text}") from None
        if any(ord(char) < 32 for char in value):
            # An escaped NUL would reach the database, which refuses it.
            raise FilterError("a string in the filter contains control characters")
        if _SURROGATE.search(value):
            raise FilterError("a string in the filter contains a lone surrogate (\\ud800-\\udfff)")
        return value
    if kind == "word":
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered == "null":
            return None
        # ASCII digits only: \d also matches other scripts' digits, which JSON cannot read.
        if re.fullmatch(r"-?\d+(\.\d+)?", text, re.ASCII):
            return json.loads(text)
    raise FilterError(f"expected a value, found {text}")


def parse_filter(text: str) -> Node:
    """The tree of a SCIM filter; raises :class:`FilterError`."""
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"the filter is longer than {MAX_FILTER_LENGTH} characters")
    if any(ord(char) < 32 and char not in "\t\r\n" for char in text):
        raise FilterError("the filter contains control characters")
    if _SURROGATE.search(text):
        # HTTP query strings cannot carry one (Werkzeug decodes with replacement): a caller
        # passing one would otherwise see it echoed in an error the response cannot encode.
        raise FilterError("the filter contains a lone surrogate (\\ud800-\\udfff)")
    parser = _Parser(_tokens(text))
    if not parser.tokens:
        raise FilterError("the filter is empty")
    node = parser.expression(0)
    if parser.index != len(parser.tokens):
        raise FilterError(f"unexpected {parser.tokens[parser.index][1]} in the filter")
    return node


def parse_datetime(value: Any) -> datetime:
    """An xsd:dateTime filter value as an aware UTC datetime; FilterError if it is none."""
    if not isinstance(value, str):
        raise FilterError("a date must be given as a quoted xsd:dateTime string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        # Year 1 at +14:00 or year 9999 at -14:00 lies outside what datetime holds in UTC.
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise FilterError(
            f"{value!r} is not an xsd:dateTime between years 1 and 9999, such as "
            "2026-09-01T00:00:00Z"
        ) from None
