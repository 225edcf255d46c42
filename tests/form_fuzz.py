"""A crawler that submits every form of an app with hostile values, for the inputs nobody wrote a
test for. The standing rule it checks: bad input gets a clear answer in the user's language and
the right status; nothing a client sends produces a 500.

Used by ``tests/idp/test_form_fuzz.py`` and ``tests/hall/test_form_fuzz.py``: each describes its
visitors (how one is signed in, where the crawl starts, which valid actions would end the crawl)
and :func:`fuzz_forms` does the rest. Everything is deterministic (a fixed seed), and bounded in
pages and submissions so each file runs in well under a minute.
"""

from __future__ import annotations

import logging
import random
import re
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.sql import sqltypes
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

SEED = 20261207
ROOT = str(Path(__file__).resolve().parents[1]) + "/"
#: Pages one visitor's crawl opens at most (redirects included).
MAX_PAGES = 150
#: Concrete pages per page pattern (``/applications/{id}`` opened for three applications).
PAGES_PER_PATTERN = 3
#: Submissions of one field with one mutation each, per form, beyond the all-fields ones (a
#: link's query gets none: its parameters are few, and all of them are mutated together).
FIELD_SUBMISSIONS = 8
#: Responses larger than this are not read for links or forms (downloads, exports).
MAX_PARSED_BYTES = 512 * 1024
#: Tokens a page carries for its form: always sent as the page gave them (except once, without).
TOKENS = frozenset({"csrf_token", "once", "nonce"})
#: What werkzeug or WTForms say by themselves, in English; none of it may reach a Chinese page.
ENGLISH_DEFAULTS = (
    "The browser (or proxy) sent a request",
    "Field cannot be longer",
    "Field must be",
    "This field is required",
    "Not a valid",
    "Invalid Choice",
    "is not a valid choice",
    "Invalid input.",
    "Invalid email address",
    "Invalid URL",
    "The CSRF token",
)
#: Fields a form empties on purpose after a refusal: secrets, single-use codes, and national ID
#: numbers (never echoed into a page).
CLEARED_ON_PURPOSE = re.compile(r"password|passwd|code|captcha|otp|secret|token|nonce|id_number")
#: Control characters no keyboard types (TAB, LF and CR aside); a page showing one shows bad
#: input that was stored (HTML calls them a parse error, XML cannot hold them at all).
CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
TEXT_KINDS = frozenset({"text", "textarea", "email", "tel", "search", "url", "number", "date"})

# --------------------------------------------------------------------------- hostile values


@dataclass(frozen=True)
class Mutation:
    """One hostile way to fill a field: a value, no value (``missing``), or two values
    (``duplicate``: the page's, then this one)."""

    name: str
    value: str = ""
    missing: bool = False
    duplicate: bool = False
    #: A person could type this and would expect to see it again after a refusal.
    typed: bool = False


MUTATIONS: tuple[Mutation, ...] = (
    Mutation("empty", ""),
    Mutation("10k-chars", "长" * 5_000 + "x" * 5_000),
    Mutation("nul", "12\x00 34"),
    Mutation("control-chars", "a\x01\x08\x1b[31m\x7f\u202e\u200b\r\nb\tc"),
    Mutation("full-width-digits", "２０９９１２３４５６", typed=True),
    Mutation("spaces", "  测试 值  ", typed=True),
    Mutation("outside-options", "__not_an_option__"),  # for a select, a radio or a box
    Mutation("duplicated-key", "第二个值", duplicate=True),
    Mutation("negative", "-1"),
    Mutation("huge-number", str(10**30)),
    Mutation("bad-date", "2026-13-40"),
    Mutation("year-zero", "0000-01-01"),
    Mutation("last-day-of-time", "9999-12-31"),  # one day more does not exist
    Mutation("not-a-number", "NaN"),
    Mutation("infinity", "1e309"),
    Mutation("json-looking", '{"$ne": null, "__proto__": [1], "a": "\\u0000"}', typed=True),
    Mutation("emoji-5000", "😀" * 5_000),
    Mutation("missing", missing=True),
)
#: Invalid percent-encoding in a raw body: a lone surrogate (``%ED%A0%80``), a truncated
#: sequence and a percent sign with no hex digits (lone surrogates cannot be sent as UTF-8).
BAD_ENCODING = "%ED%A0%80%E9%80%ZZ%"

# --------------------------------------------------------------------------- reading pages


@dataclass
class Field:
    """One named control of a form, as a browser would send it."""

    name: str
    kind: str
    #: What the page has in it (a select's chosen option, a checked box's value); None: nothing
    #: is sent (an unchecked box).
    value: str | None = None
    options: list[str] = field(default_factory=list)


@dataclass
class Form:
    """A ``<form>``: where and how it is sent, and its fields in page order."""

    method: str
    action: str
    enctype: str
    fields: list[Field] = field(default_factory=list)

    def field_named(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


#: Attributes whose text a person reads (or a screen reader speaks).
_READ_ATTRIBUTES = ("placeholder", "title", "aria-label", "alt")


class _PageParser(HTMLParser):
    """Links, forms and visible text of one HTML page (the standard library's parser)."""

    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_url = page_url
        self.links: list[str] = []
        self.forms: list[Form] = []
        self.text: list[str] = []
        #: What a person reads in attributes: placeholders, tooltips, labels, button captions.
        self.attribute_text: list[str] = []
        self.lang: str | None = None
        self._form: Form | None = None
        self._select: Field | None = None
        self._option: str | None = None
        self._option_text: list[str] = []
        self._option_selected = False
        self._textarea: Field | None = None
        self._skip_text = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        self.attribute_text.extend(a[k] for k in _READ_ATTRIBUTES if a.get(k))
        if tag in ("input", "button") and a.get("type") in ("submit", "button", "reset"):
            self.attribute_text.append(a.get("value", ""))
        if tag == "html":
            self.lang = a.get("lang")
        elif tag in ("script", "style"):
            self._skip_text += 1
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "form":
            self._form = Form(
                method=a.get("method", "get").upper(),
                action=a.get("action") or self.page_url,
                enctype=a.get("enctype", "application/x-www-form-urlencoded"),
            )
            self.forms.append(self._form)
        elif tag == "option" and self._select is not None:
            self._option = a.get("value")
            self._option_text = []
            self._option_selected = "selected" in a
        elif self._form is None or "disabled" in a or not a.get("name", "").strip():
            return
        elif tag == "input":
            self._input(a)
        elif tag == "button" and a.get("type", "submit") == "submit":
            self._submit(a["name"], a.get("value", ""))
        elif tag == "select":
            self._select = Field(a["name"], "select")
            self._form.fields.append(self._select)
        elif tag == "textarea":
            self._textarea = Field(a["name"], "textarea", "")
            self._form.fields.append(self._textarea)

    def _input(self, a: dict[str, str]) -> None:
        assert self._form is not None
        kind = a.get("type", "text").lower()
        name, value = a["name"], a.get("value", "")
        if kind in ("submit", "image"):
            self._submit(name, value)
            return
        if kind in ("button", "reset"):
            return
        existing = self._form.field_named(name)
        if kind in ("radio", "checkbox"):
            value = value or "on"
            if existing is None:
                existing = Field(name, kind)
                self._form.fields.append(existing)
            existing.options.append(value)
            if "checked" in a and existing.value is None:
                existing.value = value
            return
        if existing is None:
            self._form.fields.append(Field(name, kind, value))

    def _submit(self, name: str, value: str) -> None:
        assert self._form is not None
        existing = self._form.field_named(name)
        if existing is None:
            existing = Field(name, "submit", value)
            self._form.fields.append(existing)
        existing.options.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip_text = max(0, self._skip_text - 1)
        elif tag == "form":
            self._form = None
        elif tag == "option" and self._select is not None:
            self._end_option()
        elif tag == "select":
            if self._select is not None and self._select.value is None and self._select.options:
                self._select.value = self._select.options[0]
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def _end_option(self) -> None:
        assert self._select is not None
        value = self._option if self._option is not None else "".join(self._option_text).strip()
        self._select.options.append(value)
        if self._option_selected and self._select.value is None:
            self._select.value = value
        self._option, self._option_selected = None, False

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea.value = (self._textarea.value or "") + data
        if self._select is not None:
            self._option_text.append(data)
        if not self._skip_text:
            self.text.append(data)


@dataclass
class Page:
    """What one HTML response holds."""

    links: list[str]
    forms: list[Form]
    text: str
    lang: str | None
    #: The text of the attributes a person reads (placeholders, tooltips), one string each.
    attribute_text: list[str] = field(default_factory=list)


def read_page(url: str, html: str) -> Page:
    """Parse ``html`` (served at ``url``)."""
    parser = _PageParser(url)
    parser.feed(html)
    parser.close()
    text = re.sub(r"\s+", " ", "".join(parser.text)).strip()
    return Page(parser.links, parser.forms, text, parser.lang, parser.attribute_text)


# --------------------------------------------------------------------------- addresses

_ID_SEGMENT = re.compile(r"^(?:\d+|(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{16,})$")


def internal(url: str, base: str) -> str | None:
    """``url`` (as a page links it from ``base``) as a path and query on this app, else None."""
    parts = urlsplit(url)
    if parts.scheme not in ("", "http", "https") or parts.netloc not in ("", "localhost"):
        return None
    path = parts.path
    if not path:
        path = urlsplit(base).path
    elif not path.startswith("/"):
        path = urlsplit(base).path.rsplit("/", 1)[0] + "/" + path
    return urlunsplit(("", "", path, parts.query, ""))


def pattern(url: str) -> str:
    """``url``'s path with ids collapsed (``/applications/{id}/act``)."""
    path = urlsplit(url).path
    return "/".join("{id}" if _ID_SEGMENT.match(s) else s for s in path.split("/"))


def page_key(url: str) -> str:
    """Pages alike for the crawl: the path pattern and the names of the query's parameters."""
    names = sorted({k for k, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)})
    return pattern(url) + "?" + "&".join(names)


def form_key(form: Form) -> str:
    """Forms alike: method, action pattern and field names (the SMS and password sign-in forms
    post to one address with different fields)."""
    names = ",".join(sorted(f.name for f in form.fields))
    return f"{form.method} {pattern(form.action)} [{names}]"


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    """One broken answer: who sent what where, and what was wrong with the response."""

    visitor: str
    form: str
    mutation: str
    problem: str
    detail: str = ""

    def __str__(self) -> str:
        detail = f"\n      {self.detail}" if self.detail else ""
        return f"[{self.visitor}] {self.form} ← {self.mutation}: {self.problem}{detail}"


class _ErrorLog(logging.Handler):
    """Keeps the tracebacks the app logs, to tell what a 500 was."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> str:
        """The innermost frames and the exception of what was logged since the last call."""
        lines: list[str] = []
        for record in self.records:
            if record.exc_info and record.exc_info[1] is not None:
                lines.extend(_summary(record.exc_info[1]))
            else:
                lines.append(record.getMessage()[:300])
        self.records.clear()
        return "\n      ".join(lines)


def _summary(error: BaseException) -> list[str]:
    """The two innermost frames of the project's own code, then the exception."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if f.filename.startswith(ROOT) and "/.venv/" not in f.filename]
    where = [f"{f.filename[len(ROOT) :]}:{f.lineno} in {f.name}" for f in ours[-2:]]
    return [*where, f"{type(error).__name__}: {str(error)[:300]}"]


@contextmanager
def error_log() -> Iterator[_ErrorLog]:
    """Collect the errors every logger reports while the block runs."""
    handler = _ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


# --------------------------------------------------------------------------- visitors


@dataclass
class Visitor:
    """One kind of person: how they get in, where their crawl starts, what they must not do.

    ``enter`` signs a fresh client in (nothing for anonymous visitors); ``signed_in`` tells
    whether the client still is, so a form that ended the session is reported rather than
    silently turning the rest of the crawl anonymous. ``skip`` names the valid actions that
    would end the crawl (signing out, disabling one's own account); they are neither opened
    nor submitted.
    """

    name: str
    start: Sequence[str]
    enter: Callable[[FlaskClient], None] = lambda client: None
    #: False: open only the start pages (a wizard's step, which other pages would restart).
    follow_links: bool = True
    signed_in: Callable[[FlaskClient], bool] | None = None
    skip: Callable[[str], bool] = lambda url: False
    #: The language of the visitor's browser ("zh" or "en"), sent as Accept-Language on every
    #: request, as a browser does: the pages must come back in it.
    language: str = "zh"


#: The ``lang`` attribute of a page in each visitor language.
PAGE_LANG = {"zh": "zh-CN", "en": "en"}
#: Accept-Language as each visitor's browser sends it.
ACCEPT_LANGUAGE = {"zh": "zh-CN,zh;q=0.9", "en": "en"}
_CJK = re.compile(r"[\u3400-\u9fff\uff01-\uff5e\u3000-\u303f]")
_HAN = re.compile(r"[\u3400-\u9fff]")
_PLACEHOLDER = re.compile(r"%\(\w+\)[sdfr]|%[sdfr]|\{\w*\}")
#: Catalogue text shorter than this (in characters) is not looked for in English pages: a short
#: word (提交, 姓名) also occurs inside names and titles that come from the database.
MIN_MSGID_LENGTH = 4


@dataclass(frozen=True)
class Catalogue:
    """What an app's English catalogue says: its Chinese msgids (the text an English page must
    not show: it should have been translated) and its English messages."""

    chinese: frozenset[str]
    english: tuple[str, ...]


def english_catalogue(app: Flask) -> Catalogue:
    """The English catalogues of ``app`` (every translation directory it reads). A msgid with
    placeholders is looked for by its literal pieces between them (``已提交 %(n)s 项``: 已提交);
    each piece, like each whole msgid, counted only when it is at least
    :data:`MIN_MSGID_LENGTH` characters long and holds a Chinese character."""
    chinese: set[str] = set()
    english: list[str] = []
    for directory in app.config["BABEL_TRANSLATION_DIRECTORIES"].split(";"):
        po = Path(directory) / "en" / "LC_MESSAGES" / "messages.po"
        if not po.exists():
            continue
        with po.open("rb") as source:
            catalogue = read_po(source)
        for message in catalogue:
            if not message.id:
                continue
            english.extend(s for s in _forms(message.string) if s)
            for msgid in _forms(message.id):
                for piece in _PLACEHOLDER.split(msgid):
                    piece = piece.strip()
                    if len(piece) >= MIN_MSGID_LENGTH and _HAN.search(piece):
                        chinese.add(piece)
    # What the crawler itself types is no catalogue text on the page.
    typed = [m.value for m in MUTATIONS] + ["测试"]
    chinese = {c for c in chinese if not any(c in value for value in typed)}
    return Catalogue(frozenset(chinese), tuple(english))


def _forms(text: str | Sequence[str] | None) -> list[str]:
    """A catalogue entry's text as a list: one string, or its singular and plural forms."""
    if text is None:
        return []
    return [text] if isinstance(text, str) else list(text)


def data_text(app: Flask) -> list[str]:
    """The Chinese text an app shows that no catalogue translates: its configured names (the
    school, the site) and what its database holds (names, departments, service titles and
    guides, notices, form labels), each line that has a Chinese character and is at least
    :data:`MIN_MSGID_LENGTH` long, longest first. Removed from an English page before its
    check: a department called 网络与信息中心 is no untranslated msgid of that name."""
    found: set[str] = {v for v in app.config.values() if isinstance(v, str)}
    db = app.extensions["sqlalchemy"]
    with app.app_context():
        for table in db.metadata.sorted_tables:
            columns = [
                c for c in table.columns if isinstance(c.type, (sqltypes.String, sqltypes.JSON))
            ]
            if columns:
                for row in db.session.execute(select(*columns)):
                    found.update(_strings(list(row)))
        db.session.remove()
    lines = {re.sub(r"\s+", " ", line).strip() for value in found for line in value.splitlines()}
    kept = [line for line in lines if len(line) >= MIN_MSGID_LENGTH and _HAN.search(line)]
    return sorted(kept, key=len, reverse=True)


def _strings(value: object) -> Iterator[str]:
    """Every string in a column's value (a JSON document's, too)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


#: Addresses no visitor opens or posts to: signing out, switching the page language (the
#: language check needs the visitor's own), static files.
ALWAYS_SKIPPED = re.compile(r"logout|sign-?out|[?&]lang=|/static/|\.(?:png|jpe?g|css|js|ico)\b")


class Fuzzer:
    """Crawls an app as one visitor and submits each form it finds with hostile values."""

    def __init__(
        self,
        app: Flask,
        visitor: Visitor,
        findings: list[Finding],
        log: _ErrorLog,
        number: int,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.app = app
        self.visitor = visitor
        #: The app's English catalogue, for an English visitor's pages, and the text of its
        #: data (read as the visit starts), which is no catalogue's.
        self.catalogue = catalogue
        self.data = data_text(app) if catalogue is not None else []
        self.findings = findings
        self.log = log
        #: Each visitor comes from an address of their own: the anonymous visitor's refused
        #: sign-ins must not put a CAPTCHA in front of the next visitor's.
        self.address = f"127.0.{number}.1"
        self.client = self.new_client()
        self.requests = 0
        self.stopped = False
        #: The page :meth:`check` read last (the response it came from, and what it holds).
        self.last_page: tuple[TestResponse, Page] | None = None

    def new_client(self) -> FlaskClient:
        """A browser of this visitor, signed in."""
        client = self.app.test_client()
        client.environ_base["REMOTE_ADDR"] = self.address
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = ACCEPT_LANGUAGE[self.visitor.language]
        self.visitor.enter(client)
        return client

    # -- sending and checking

    def send(
        self, method: str, url: str, where: str, mutation: str, **kwargs: Any
    ) -> TestResponse | None:
        """One request; its response checked (see :meth:`check`), None when the app raised."""
        self.requests += 1
        self.log.take()
        try:
            response = self.client.open(url, method=method, **kwargs)
        except Exception as error:  # the app raised through the test client: a 500 all the same
            self.report(where, mutation, "the app raised", "\n      ".join(_summary(error)))
            return None
        self.check(response, where, mutation, url)
        return response

    def report(self, where: str, mutation: str, problem: str, detail: str = "") -> None:
        self.findings.append(Finding(self.visitor.name, where, mutation, problem, detail))

    def check(self, response: TestResponse, where: str, mutation: str, url: str) -> None:
        """The rule: no 5xx; an HTML page has text and no control character (bad input kept);
        an error page is in the visitor's language, never werkzeug's or WTForms' English
        defaults, and a page rather than bare text. An English visitor's every page is in
        English, and shows none of the catalogue's Chinese (text that went untranslated)."""
        status = response.status_code
        logged = self.log.take()
        if status >= 500:
            self.report(where, mutation, f"status {status}", logged)
            return
        if 300 <= status < 400 or status == 204:
            return
        body = response.get_data()
        if response.mimetype == "text/html":
            if len(body) > MAX_PARSED_BYTES:
                return
            html = body.decode("utf-8", "replace")
            page = read_page(url, html)
            self.last_page = (response, page)
            if not page.text:
                self.report(where, mutation, f"status {status}: an HTML page without text")
            expected = PAGE_LANG[self.visitor.language]
            if page.lang != expected and (status >= 400 or self.visitor.language != "zh"):
                self.report(
                    where, mutation, f"status {status}: page lang={page.lang!r}", page.text[:160]
                )
            english = [s for s in ENGLISH_DEFAULTS if s in html and not self.says_itself(s)]
            if self.visitor.language == "en" and page.lang == "en":
                self.check_translated(page, where, f"status {status}", mutation)
            if english:
                self.report(where, mutation, f"status {status}: English text {english}")
            control = CONTROL_CHARACTER.search(html)
            if control:
                around = html[max(0, control.start() - 60) : control.end() + 20]
                self.report(
                    where,
                    mutation,
                    f"status {status}: the page holds control character "
                    f"U+{ord(control.group()):04X}",
                    repr(around),
                )
        elif status >= 400 and response.mimetype != "application/json":
            self.report(
                where,
                mutation,
                f"status {status}: a {response.mimetype or 'bodiless'} answer, not a page",
                body[:160].decode("utf-8", "replace"),
            )

    def says_itself(self, default: str) -> bool:
        """Whether the English catalogue says ``default`` (an English visitor may read it,
        from the app's own messages)."""
        if self.visitor.language != "en" or self.catalogue is None:
            return False
        return any(default in message for message in self.catalogue.english)

    def check_translated(self, page: Page, where: str, status: str, mutation: str) -> None:
        """An English page shows no Chinese msgid of the catalogue: each would be a message
        that missed ``_()``, or was built in a way Babel cannot find (a name, a department, a
        service title from the database is no msgid)."""
        if self.catalogue is None:
            return
        text = " ".join([page.text, *page.attribute_text])
        if not _CJK.search(text):
            return
        for data in self.data:
            if data in text:
                text = text.replace(data, " ¦ ")
        shown = sorted(c for c in self.catalogue.chinese if c in text)
        # A msgid inside a longer one is the longer one shown.
        shown = [c for c in shown if not any(c != d and c in d for d in shown)]
        if shown:
            where_shown = [_around(text, c) for c in shown[:3]]
            self.report(
                where,
                mutation,
                f"{status}: untranslated Chinese on an English page {shown}",
                " | ".join(where_shown),
            )

    def page_of(self, response: TestResponse) -> Page | None:
        """What :meth:`check` read from ``response``; None for anything but a page."""
        if self.last_page is not None and self.last_page[0] is response:
            return self.last_page[1]
        return None

    def still_in(self, after: str) -> None:
        """Report (and repair) a visitor signed out by the form just submitted."""
        if self.visitor.signed_in is None or self.visitor.signed_in(self.client):
            return
        self.report(after, "-", "the visitor was signed out (add it to the visitor's skips?)")
        try:
            self.client = self.new_client()
        except Exception as error:  # a one-time code already used: the visit ends here
            self.report(after, "-", "could not sign the visitor in again", repr(error)[:300])
            self.stopped = True

    def skipped(self, url: str) -> bool:
        return bool(ALWAYS_SKIPPED.search(url)) or self.visitor.skip(url)

    # -- the crawl

    def crawl(self) -> list[tuple[list[str], Form]]:
        """Open same-app links breadth-first from the visitor's start pages; returns each
        distinct form with the pages it is on, in the order found, then each distinct link with
        a query (``/admin/audit?page=2``) as a GET form of its parameters (no pages: it is
        sent as it is)."""
        queue: deque[str] = deque(self.visitor.start)
        queried: dict[str, Form] = {}
        seen: set[str] = set()
        per_key: dict[str, int] = {}
        forms: dict[str, tuple[list[str], Form]] = {}
        opened = 0
        while queue and opened < MAX_PAGES:
            url = queue.popleft()
            key = page_key(url)
            if url in seen or per_key.get(key, 0) >= PAGES_PER_PATTERN or self.skipped(url):
                continue
            seen.add(url)
            per_key[key] = per_key.get(key, 0) + 1
            opened += 1
            if urlsplit(url).query:
                # One link per address: /services?page=2 and /services?audience=student reach
                # the same view, which the mutations of either query exercise.
                queried.setdefault(pattern(url), _link_form(url))
            response = self.send("GET", url, f"GET {url}", "(crawl)")
            if response is None:
                continue
            if 300 <= response.status_code < 400:
                target = internal(response.headers.get("Location", ""), url)
                if target:
                    queue.appendleft(target)
                continue
            page = self.page_of(response)
            if page is None:
                continue
            for link in page.links if self.visitor.follow_links else ():
                target = internal(link, url)
                if target and target not in seen:
                    queue.append(target)
            for form in page.forms:
                action = internal(form.action, url)
                if action is None or self.skipped(action):
                    continue
                form.action = action
                pages, _ = forms.setdefault(form_key(form), ([], form))
                pages.append(url)
        links: list[tuple[list[str], Form]] = [
            ([], form) for form in queried.values() if form_key(form) not in forms
        ]
        return [*forms.values(), *links]

    # -- submitting

    def fresh_form(self, pages: list[str], original: Form) -> Form | None:
        """The form as a page shows it now, with its tokens (some are single-use); None when no
        page has it any more. The form may have grown a field since (a CAPTCHA)."""
        key = form_key(original)
        names = {f.name for f in original.fields}
        while pages:
            # Checked like any page: one that shows what an earlier submission stored.
            response = self.send("GET", pages[0], key, "(its page, read again)")
            page = self.page_of(response) if response is not None else None
            if page is not None and response is not None and response.status_code == 200:
                for form in page.forms:
                    action = internal(form.action, pages[0])
                    if action is None:
                        continue
                    form.action = action
                    if form_key(form) == key or (
                        form.method == original.method
                        and pattern(action) == pattern(original.action)
                        and names <= {f.name for f in form.fields}
                    ):
                        return form
            pages.pop(0)  # gone from this page (the task was handled): try the next one
        return None

    def fuzz(self, pages: list[str], form: Form) -> int:
        """Submit ``form`` with every mutation in all its fields at once, then with one field
        at a time mutated (a deterministic sample), then once without its CSRF token and once
        with invalid percent-encoding in a raw body; returns how many submissions were sent
        before the form was gone (a valid submission may remove it)."""
        key = form_key(form)
        mutable = [f for f in form.fields if f.name not in TOKENS]
        rng = random.Random(f"{SEED}:{self.visitor.name}:{key}")
        plans: list[tuple[str, Callable[[Form], MultiDict[str, Any] | bytes]]] = []
        for mutation in MUTATIONS:
            plans.append((f"all fields: {mutation.name}", _all_fields(mutation)))
        pairs = [(f.name, m) for f in mutable for m in MUTATIONS]
        pairs += [
            (f.name, Mutation(f"choose {o!r}", o))  # each named button of the form
            for f in mutable
            if f.kind == "submit"
            for o in f.options[1:]
        ]
        sampled = FIELD_SUBMISSIONS if pages else 0
        for name, mutation in rng.sample(pairs, min(sampled, len(pairs))):
            plans.append((f"{name}: {mutation.name}", _one_field(name, mutation)))
        if form.method == "POST":
            plans.append(("no CSRF token", _without_tokens))
        if mutable:
            plans.append((f"{mutable[0].name}: invalid percent-encoding", _bad_encoding))
        # A link's query is sent as it is: there is no page to read it from. A form is read
        # afresh before each submission, unless the last one was refused and the form has no
        # single-use token: a refusal changes nothing (the rule under test), and the page
        # would only be read again to find the same form.
        current: Form | None = form if not pages else None
        single_use = bool({f.name for f in form.fields} & (TOKENS - {"csrf_token"}))
        sent = 0
        for label, build in plans:
            if current is None:
                current = self.fresh_form(pages, form)
                if current is None:
                    break  # the form is gone (the task was handled, the draft deleted)
            status = self.submit(current, key, label, build(current))
            sent += 1
            if pages and (single_use or not 400 <= status < 500):
                current = None
        self.still_in(key)
        return sent

    def submit(self, form: Form, key: str, label: str, data: MultiDict[str, Any] | bytes) -> int:
        """Send one submission; follow a redirect once to check the page it leads to. Returns
        the submission's status (500 when the app raised)."""
        response: TestResponse | None
        if form.method != "POST":
            query = (
                data.decode()
                if isinstance(data, bytes)
                else urlencode(list(data.items(multi=True)))
            )
            url = urlsplit(form.action)._replace(query=query).geturl()
            response = self.send("GET", url, key, label)
        else:
            content_type: str | None = "application/x-www-form-urlencoded"  # a raw body
            if not isinstance(data, bytes):
                multipart = "multipart" in form.enctype or any(
                    isinstance(v, tuple) for v in data.values()
                )
                content_type = "multipart/form-data" if multipart else None
            response = self.send(
                "POST", form.action, key, label, data=data, content_type=content_type
            )
        if response is None:
            return 500
        if 300 <= response.status_code < 400:
            target = internal(response.headers.get("Location", ""), form.action)
            if target and not self.skipped(target):
                self.send("GET", target, key, f"{label} (the page it redirects to)")
        elif response.status_code >= 400 and isinstance(data, MultiDict):
            self.check_kept(form, key, label, data, response)
        return response.status_code

    def check_kept(
        self,
        form: Form,
        key: str,
        label: str,
        sent: MultiDict[str, Any],
        response: TestResponse,
    ) -> None:
        """A refusal that shows the form again shows what was typed in it (a person corrects
        one field, not all of them), except secrets and single-use codes."""
        page = self.page_of(response)
        again = next((f for f in page.forms if form_key(f) == key), None) if page else None
        if again is None:
            return
        for original in form.fields:
            typed = sent.getlist(original.name)
            if (
                original.kind not in TEXT_KINDS
                or CLEARED_ON_PURPOSE.search(original.name)
                or len(typed) != 1
                or not isinstance(typed[0], str)
                or not typed[0].strip()
                or len(typed[0]) > 200
                or not _is_typed(label, original.name)
            ):
                continue
            shown = again.field_named(original.name)
            if shown is not None and not (shown.value or "").strip():
                self.report(key, label, f"the typed value of {original.name!r} is gone")


def _around(text: str, part: str) -> str:
    at = text.find(part)
    return text[max(0, at - 40) : at + len(part) + 40]


def _is_typed(label: str, name: str) -> bool:
    """Whether the submission ``label`` put something a person types into field ``name``."""
    typed = {m.name for m in MUTATIONS if m.typed}
    scope, _, mutation = label.partition(": ")
    return mutation in typed and scope in ("all fields", name)


# --------------------------------------------------------------------------- building bodies


def _baseline(form: Form) -> MultiDict[str, Any]:
    """What the page would send untouched, with empty text fields filled plausibly, so a
    mutation in one field meets the checks behind the others."""
    data: MultiDict[str, Any] = MultiDict()
    for f in form.fields:
        value = f.value
        if f.kind == "file":
            continue
        if f.kind in ("checkbox", "radio") and value is None:
            continue
        if f.kind == "submit":
            value = f.options[0] if f.options else ""
        if not value and f.name not in TOKENS:
            value = _plausible(f)
        data.add(f.name, value or "")
    return data


def _plausible(f: Field) -> str:
    return {
        "email": "fuzz@example.edu.cn",
        "tel": "13800138000",
        "number": "1",
        "date": "2026-12-01",
        "datetime-local": "2026-12-01T09:30",
        "password": "Fuzz-Passw0rd-2026",
        "url": "https://example.edu.cn/",
    }.get(f.kind, "测试")


def _put(data: MultiDict[str, Any], f: Field, mutation: Mutation) -> None:
    """Replace ``f``'s value in ``data`` as ``mutation`` says."""
    data.poplist(f.name)
    if mutation.missing:
        return
    if f.kind == "file":
        filename = mutation.value or "空.pdf"
        data.add(f.name, (BytesIO(b"%PDF-1.7\n%%EOF\n"), filename[:10_000]))
        return
    if mutation.duplicate:
        first = f.value or (f.options[0] if f.options else _plausible(f))
        data.add(f.name, first)
        data.add(f.name, mutation.value)
        return
    data.add(f.name, mutation.value)


def _all_fields(mutation: Mutation) -> Callable[[Form], MultiDict[str, Any]]:
    def build(form: Form) -> MultiDict[str, Any]:
        data = _baseline(form)
        for f in form.fields:
            if f.name not in TOKENS:
                _put(data, f, mutation)
        return data

    return build


def _one_field(name: str, mutation: Mutation) -> Callable[[Form], MultiDict[str, Any]]:
    def build(form: Form) -> MultiDict[str, Any]:
        data = _baseline(form)
        chosen = form.field_named(name)
        if chosen is not None:
            _put(data, chosen, mutation)
        return data

    return build


def _link_form(url: str) -> Form:
    """A link's query as the GET form that would have sent it."""
    parts = urlsplit(url)
    fields = [Field(k, "text", v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return Form("GET", parts.path, "application/x-www-form-urlencoded", fields)


def _without_tokens(form: Form) -> MultiDict[str, Any]:
    data = _baseline(form)
    for token in TOKENS:
        data.poplist(token)
    return data


def _bad_encoding(form: Form) -> bytes:
    data = _baseline(form)
    victim = next(f.name for f in form.fields if f.name not in TOKENS)
    pairs = [
        f"{quote(k)}={BAD_ENCODING if k == victim else quote(str(v))}"
        for k, v in data.items(multi=True)
        if isinstance(v, str)
    ]
    return "&".join(pairs).encode("ascii")


# --------------------------------------------------------------------------- the whole run


def fuzz_forms(app: Flask, visitors: Iterable[Visitor]) -> tuple[list[Finding], dict[str, Any]]:
    """Crawl and fuzz the app as each visitor in turn; returns the findings and what was
    covered. A form is submitted by the first visitor of each language who finds it."""
    findings: list[Finding] = []
    covered: dict[str, Any] = {}
    fuzzed: set[tuple[str, str]] = set()
    catalogue: Catalogue | None = None
    with error_log() as log:
        for number, visitor in enumerate(visitors, start=1):
            if visitor.language == "en" and catalogue is None:
                catalogue = english_catalogue(app)
            fuzzer = Fuzzer(app, visitor, findings, log, number, catalogue)
            # A form an earlier visitor submitted is not submitted again in the same
            # language: the same checks would run on the same code. In the other language the
            # answers are other text.
            found = [
                (pages, f)
                for pages, f in fuzzer.crawl()
                if (visitor.language, form_key(f)) not in fuzzed
            ]
            # Forms that remove what other forms act on (a draft, a task, a role) go last.
            found.sort(key=lambda item: _removal_rank(item[1]))
            submissions: dict[str, int] = {}
            for pages, form in found:
                if fuzzer.stopped:
                    break
                fuzzed.add((visitor.language, form_key(form)))
                submissions[form_key(form)] = fuzzer.fuzz(pages, form)
            covered[visitor.name] = {"forms": submissions, "requests": fuzzer.requests}
    return findings, covered


#: Forms by how much their valid submission takes away from the forms after them: changes a
#: thing (urging, passing a task on, publishing), removes one (a task handled, a draft
#: deleted), removes many (batch approval).
_RANKS = (
    re.compile(r"/(?:urge|pass-on|publish|enable|rotate-secret)$"),
    re.compile(r"/(?:delete|withdraw|revoke|unpublish|disable|end|act)$"),
    re.compile(r"/batch-|/end-"),
)


def _removal_rank(form: Form) -> int:
    path = urlsplit(form.action).path
    return max((rank for rank, rule in enumerate(_RANKS, 1) if rule.search(path)), default=0)


def coverage(covered: dict[str, Any]) -> str:
    """What :func:`fuzz_forms` covered: per visitor, each form and how often it was sent."""
    lines = []
    for name, seen in covered.items():
        lines.append(f"  {name}: {len(seen['forms'])} forms, {seen['requests']} requests")
        lines.extend(f"    {sent:3d} × {key}" for key, sent in seen["forms"].items())
    return "\n".join(lines)


def summary(findings: Sequence[Finding]) -> str:
    """The findings, alike ones (same visitor, form, problem and cause) counted once."""
    grouped: dict[tuple[str, str, str, str], list[Finding]] = {}
    for finding in findings:
        key = (finding.visitor, finding.form, finding.problem, finding.detail)
        grouped.setdefault(key, []).append(finding)
    lines = [f"{len(grouped)} distinct problems in {len(findings)} responses:"]
    for same in grouped.values():
        more = f" (and {len(same) - 1} more mutations)" if len(same) > 1 else ""
        lines.append(f"  {same[0]}{more}")
    return "\n".join(lines)
