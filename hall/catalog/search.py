"""Catalogue search: the precomputed search columns of a service, and turning what people type
(Chinese, full pinyin ``chuguo``, initials ``cgcj``) into a ranked SQL query.

Matching is substring ``LIKE`` over lowercased columns: at a campus's few thousand services a
sequential scan of one table answers in a few milliseconds (``benchmarks/catalog.py``), and it
needs no database-specific text search, so SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from pypinyin import Style, lazy_pinyin
from sqlalchemy import ColumnElement, and_, case, func, literal, or_
from sqlalchemy.sql.elements import SQLCoreOperations

from hall.catalog.models import Service

#: Longest search text taken into account (characters, after cleaning).
MAX_QUERY_LENGTH = 50
#: At most this many words of a query are used.
MAX_TERMS = 5
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
#: Anything that is neither a letter, a digit nor a Chinese character separates words.
_SEPARATORS = re.compile(r"[^0-9a-z\u3400-\u9fff\uf900-\ufaff]+")


def _clean(text: str) -> str:
    """Lowercased, full-width folded (ＡＢＣ → abc), punctuation turned into spaces."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return _SEPARATORS.sub(" ", folded).strip()


def pinyin_words(text: str) -> tuple[str, str]:
    """(full pinyin, initials) of ``text``: Chinese characters romanised, other words kept."""
    full: list[str] = []
    initials: list[str] = []
    for chunk in _clean(text).split():
        syllables = lazy_pinyin(chunk, errors=lambda s: [s])
        full.append("".join(syllables))
        initials.append(
            "".join(
                (lazy_pinyin(ch, style=Style.FIRST_LETTER)[0] if _HAN.match(ch) else ch)
                for ch in _split_han(chunk)
            )
        )
    # Joined without separators, so initials typed for a phrase spanning two words still match
    # (出国 出境 → cgcj).
    return "".join(full), "".join(initials)


def _split_han(chunk: str) -> list[str]:
    """Chinese characters one by one, runs of Latin letters and digits as one piece."""
    return re.findall(r"[\u3400-\u9fff\uf900-\ufaff]|[0-9a-z]+", chunk)


def refresh_search_columns(service: Service) -> None:
    """Recompute the search columns from the service's current fields."""
    named = f"{service.title} {service.keywords}"
    text_parts = [
        service.title,
        service.keywords,
        service.summary,
        service.department.name if service.department else "",
        service.category.name if service.category else "",
        service.purpose,
        service.eligibility,
        service.materials,
        service.steps,
        service.approval_flow,
        service.place,
        service.offline_instructions,
    ]
    service.search_text = " ".join(_clean(part) for part in text_parts if part)
    full, initials = pinyin_words(named)
    service.search_pinyin = full
    service.search_initials = initials[:500]


@dataclass(frozen=True)
class ParsedQuery:
    """What was searched for, and what the user should be told about it."""

    terms: tuple[str, ...]
    #: The query as typed had no letters, digits or Chinese characters.
    empty_after_cleaning: bool = False
    #: The query was longer than :data:`MAX_QUERY_LENGTH` and was cut.
    truncated: bool = False
    #: The query had more than :data:`MAX_TERMS` different words; the rest were left out.
    too_many_words: bool = False


def parse_query(raw: str | None) -> ParsedQuery:
    """Split what the user typed into search terms (none for an empty box)."""
    if not raw or not raw.strip():
        return ParsedQuery(())
    cleaned = _clean(raw)
    if not cleaned:
        return ParsedQuery((), empty_after_cleaning=True)
    words = tuple(dict.fromkeys(cleaned[:MAX_QUERY_LENGTH].split()))
    return ParsedQuery(
        words[:MAX_TERMS],
        truncated=len(cleaned) > MAX_QUERY_LENGTH,
        too_many_words=len(words) > MAX_TERMS,
    )


def _like(term: str) -> str:
    """A LIKE pattern matching ``term`` anywhere (cleaned terms hold no % or _)."""
    return f"%{term}%"


def _is_latin(term: str) -> bool:
    return term.isascii()


def term_condition(term: str) -> ColumnElement[bool]:
    """Rows in which ``term`` occurs: in the text, or (Latin letters) in pinyin or initials."""
    conditions = [Service.search_text.like(_like(term))]
    if _is_latin(term) and term.isalpha():
        conditions += [
            Service.search_pinyin.like(_like(term)),
            Service.search_initials.like(_like(term)),
        ]
    return or_(*conditions)


def term_score(term: str) -> SQLCoreOperations[int]:
    """How well ``term`` matches a row: the title first, then keywords, pinyin, the guide."""
    title = func.lower(Service.title)
    parts = [
        case((title == term, 100), else_=0),
        case((title.like(f"{term}%"), 40), else_=0),
        case((title.like(_like(term)), 30), else_=0),
        case((func.lower(Service.keywords).like(_like(term)), 20), else_=0),
        case((Service.search_text.like(_like(term)), 5), else_=0),
    ]
    if _is_latin(term) and term.isalpha():
        parts += [
            case((Service.search_initials.like(f"{term}%"), 35), else_=0),
            case((Service.search_initials.like(_like(term)), 10), else_=0),
            case((Service.search_pinyin.like(f"{term}%"), 30), else_=0),
            case((Service.search_pinyin.like(_like(term)), 10), else_=0),
        ]
    total: SQLCoreOperations[int] = literal(0)
    for part in parts:
        total = total + part
    return total


def match_and_score(
    terms: tuple[str, ...],
) -> tuple[ColumnElement[bool] | None, SQLCoreOperations[int] | None]:
    """(WHERE clause: every term matches; score to order by), or (None, None) without terms."""
    if not terms:
        return None, None
    condition = and_(*(term_condition(t) for t in terms))
    score: SQLCoreOperations[int] = literal(0)
    for term in terms:
        score = score + term_score(term)
    return condition, score
