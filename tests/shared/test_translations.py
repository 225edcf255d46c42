"""Every user-facing Chinese string has an English translation, with matching placeholders.

The messages are extracted from the source the way ``make messages`` does (babel.cfg, plus the
``_l`` keyword), so a new Chinese string without English fails here, naming the string. Fix it
with ``make messages``, translate the new entries in ``<dir>/translations/en/LC_MESSAGES/
messages.po``, then ``make translations``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po
from flask import Flask

from tests.conftest import AppFactory

ROOT = Path(__file__).resolve().parents[2]
SHARED = "shared/web"
CATALOG_DIRS = (SHARED, "idp", "hall")

#: The same as babel.cfg.
METHOD_MAP = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
#: pybabel's default keywords (``_``, ``gettext``, ``ngettext``, ``N_``, …) plus ``-k _l``.
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None}

#: ``%(name)s``-style placeholders (with their conversion) and ``{name}`` tokens.
PERCENT_PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]")
BRACE_PLACEHOLDER = re.compile(r"\{(\w+)\}")
CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]+")


@cache
def extracted(directory: str) -> dict[str, tuple[str, ...]]:
    """Msgid → all its forms (singular, plural), as found in ``directory``'s source."""
    found: dict[str, tuple[str, ...]] = {}
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT / directory), method_map=METHOD_MAP, keywords=KEYWORDS
    ):
        forms = (message,) if isinstance(message, str) else tuple(message)
        found.setdefault(forms[0], forms)
    return found


@cache
def english(directory: str) -> Catalog:
    with (ROOT / directory / "translations/en/LC_MESSAGES/messages.po").open("rb") as po:
        return read_po(po)


def catalogs_for(directory: str) -> list[Catalog]:
    """Flask-Babel merges the shared catalogue into each app's, so either may translate."""
    if directory == SHARED:
        return [english(SHARED)]
    return [english(directory), english(SHARED)]


def translations(message: Message) -> tuple[str, ...]:
    string = message.string
    return (string,) if isinstance(string, str) else tuple(string)


def is_translated(message: Message | None) -> bool:
    return (
        message is not None
        and not message.fuzzy
        and all(form.strip() for form in translations(message))
    )


def placeholders(text: str) -> tuple[Counter[str], set[str]]:
    """The ``%(name)x`` placeholders (counted, conversion included) and ``{name}`` tokens."""
    percent = Counter(match.group(0) for match in PERCENT_PLACEHOLDER.finditer(text))
    bare = text.count("%") - 2 * text.count("%%") - sum(percent.values())
    percent["%"] = bare  # a lone % breaks Jinja's newstyle gettext, which always formats
    return +percent, set(BRACE_PLACEHOLDER.findall(text))


def lookup(directory: str, msgid: str) -> Message | None:
    """The first catalogue entry that translates ``msgid``, else the first that has it."""
    entries = [catalog.get(msgid) for catalog in catalogs_for(directory)]
    present = [entry for entry in entries if entry is not None]
    return next((entry for entry in present if is_translated(entry)), next(iter(present), None))


def describe(messages: Iterable[str]) -> str:
    return "\n".join(f"  {message!r}" for message in sorted(messages))


@pytest.mark.parametrize("directory", CATALOG_DIRS)
def test_source_has_messages(directory: str) -> None:
    """The extraction itself works, so the checks below are not vacuous."""
    assert extracted(directory), f"no messages extracted from {directory}"


@pytest.mark.parametrize("directory", CATALOG_DIRS)
def test_every_message_has_english(directory: str) -> None:
    """Each string marked for translation has a non-empty, non-fuzzy English msgstr."""
    missing = [msgid for msgid in extracted(directory) if lookup(directory, msgid) is None]
    untranslated = [
        msgid
        for msgid in extracted(directory)
        if (entry := lookup(directory, msgid)) is not None and not is_translated(entry)
    ]
    assert not missing, (
        f"{len(missing)} message(s) in {directory} are not in its English catalogue; "
        f"run `make messages` and translate them:\n{describe(missing)}"
    )
    assert not untranslated, (
        f"{len(untranslated)} message(s) in {directory} have no English (or a fuzzy one):\n"
        f"{describe(untranslated)}"
    )


@pytest.mark.parametrize("directory", CATALOG_DIRS)
def test_plural_messages_have_both_forms(directory: str) -> None:
    """An ngettext message is a plural entry in the catalogue, with English for both forms."""
    wrong = [
        msgid
        for msgid, forms in extracted(directory).items()
        if len(forms) > 1
        and (entry := lookup(directory, msgid)) is not None
        and (not entry.pluralizable or len(translations(entry)) != 2)
    ]
    assert not wrong, f"plural messages without two English forms:\n{describe(wrong)}"


@pytest.mark.parametrize("directory", CATALOG_DIRS)
def test_placeholders_match(directory: str) -> None:
    """``%(name)s`` placeholders and ``{name}`` tokens survive translation unchanged."""
    mismatched = []
    for msgid, forms in extracted(directory).items():
        entry = lookup(directory, msgid)
        if entry is None or not is_translated(entry):
            continue  # reported by test_every_message_has_english
        for index, target in enumerate(translations(entry)):
            source = forms[min(index, len(forms) - 1)]  # English plural forms ↔ msgid_plural
            if placeholders(source) != placeholders(target):
                mismatched.append(f"{source!r} → {target!r}")
    assert not mismatched, "placeholders differ:\n" + "\n".join(f"  {line}" for line in mismatched)


def leftover_chinese(app: Flask, page: str) -> set[str]:
    """Chinese text on an English page, apart from configured names and the language link."""
    allowed = {app.config["SITE_NAME"], app.config["SCHOOL_NAME"], "中文"}
    return set(CJK.findall(page)) - allowed


def assert_compiled() -> None:
    """The apps read the compiled .mo files, which `make translations` builds from the .po."""
    for directory in CATALOG_DIRS:
        folder = ROOT / directory / "translations/en/LC_MESSAGES"
        mo = folder / "messages.mo"
        if not mo.exists() or mo.stat().st_mtime < (folder / "messages.po").stat().st_mtime:
            pytest.fail(f"{mo} is missing or older than the .po; run `make translations`")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/login?lang=en",
            ["Sign in", "Account", "Password", "Forgot password?", "Activate account"],
        ),
        ("/login?lang=en&tab=sms", ["SMS sign-in", "Security phone", "SMS code", "Get code"]),
        (
            "/activate?lang=en",
            ["Activate account", "Verify basic details", "Link security phone", "ID number"],
        ),
        ("/recover?lang=en", ["Forgot password", "Verify identity", "Reset password"]),
    ],
)
def test_idp_pages_in_english(make_idp: AppFactory, path: str, expected: list[str]) -> None:
    """?lang=en shows the IdP's pages in English, with no stray Chinese."""
    assert_compiled()
    app = make_idp()
    response = app.test_client().get(path)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<html lang="en">' in page
    for text in expected:
        assert text in page
    assert not leftover_chinese(app, page)


def test_hall_home_in_english(make_hall: AppFactory) -> None:
    """The hall's home page and the shared layout are English too."""
    assert_compiled()
    app = make_hall()
    page = app.test_client().get("/?lang=en").get_data(as_text=True)
    assert "Services" in page and "Network and Information Centre" in page
    assert not leftover_chinese(app, page)
