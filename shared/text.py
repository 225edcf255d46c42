"""Characters nobody can see: one rule for passwords, people's and departments' names."""

from __future__ import annotations

import unicodedata

#: Controls (a tab or line break sent by a script, an escape sequence), format characters
#: (zero-width space, bidi overrides that show a name backwards, BOM) and line or paragraph
#: separators.
_UNSEEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
#: Format characters keyboards do type: ZWNJ (a key of its own on Persian keyboards, and in
#: Persian and Urdu names) and ZWJ.
_TYPED_FORMAT_CHARACTERS = frozenset({"\u200c", "\u200d"})


def has_unseen_character(text: str) -> bool:
    """Whether ``text`` holds a character nobody can see or type (see the categories above)."""
    return any(
        unicodedata.category(character) in _UNSEEN_CATEGORIES
        and character not in _TYPED_FORMAT_CHARACTERS
        for character in text
    )
