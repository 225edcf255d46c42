"""The password policy (manual 2.1.2/2.1.3: letters and digits, at least 8) and strength meter.

Every broken rule yields one message the user can act on; the strength score comes from zxcvbn,
fed with the person's own details so that a password built from them scores low.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zxcvbn import zxcvbn

from shared.i18n import translate as _
from shared.text import has_unseen_character

#: zxcvbn's time grows quickly with length, and zxcvbn 4.5 refuses more than 72 characters;
#: the prefix of a long password says enough about its strength.
ZXCVBN_MAX_INPUT = 72

_COMMON_PASSWORDS_FILE = Path(__file__).parent / "data" / "common-passwords.txt"


# Named N_ because that is a keyword pybabel extracts by default.
def N_(message: str) -> str:
    """Mark *message* for extraction where it is translated later, by ``_(variable)``."""
    return message


@dataclass(frozen=True)
class PasswordPolicy:
    """What a new password must satisfy; built from the ``PASSWORD_*`` settings."""

    min_length: int = 8
    max_length: int = 64
    #: Lowest zxcvbn score (0–4) accepted; 0 turns the strength rule off.
    min_score: int = 1
    #: Character classes (upper, lower, digit, symbol) needed; 2 = the manual's letters+digits.
    min_classes: int = 2

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PasswordPolicy:
        """The policy of an app's config (missing keys keep the defaults)."""
        return cls(
            min_length=int(config.get("PASSWORD_MIN_LENGTH", cls.min_length)),
            max_length=int(config.get("PASSWORD_MAX_LENGTH", cls.max_length)),
            min_score=int(config.get("PASSWORD_MIN_SCORE", cls.min_score)),
            min_classes=int(config.get("PASSWORD_MIN_CLASSES", cls.min_classes)),
        )


@dataclass(frozen=True)
class PersonalInfo:
    """The person's details, which their password must not contain."""

    account: str | None = None
    name: str | None = None
    phone: str | None = None
    id_number: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Strength:
    """What the strength meter shows."""

    #: zxcvbn score, 0 (guessed at once) to 4 (very hard to guess).
    score: int
    #: Width of the meter bar, 0–100.
    percent: int
    label: str
    #: Translated suggestions, most useful first.
    feedback: list[str]


def check_password(password: str, policy: PasswordPolicy, person: PersonalInfo) -> list[str]:
    """Every rule *password* breaks, one translated message each; ``[]`` when acceptable."""
    errors: list[str] = []
    # Compared in NFKC so that full-width ２０２４ or ｐａｓｓ (a Chinese IME's default) cannot
    # slip personal or common passwords past the rules; the password is hashed as typed.
    folded = unicodedata.normalize("NFKC", password)
    lowered = folded.lower()
    too_long = len(password) > policy.max_length
    if len(password) < policy.min_length or too_long:
        errors.append(
            _("密码长度须为 %(min)d–%(max)d 个字符", min=policy.min_length, max=policy.max_length)
        )
    # Nobody could type such a password again at sign-in.
    if has_unseen_character(password):
        errors.append(_("密码不能包含换行、制表符等控制字符或看不见的字符"))
    # Any script's letters count: international students may use their own alphabet.
    if not (any(c.isalpha() for c in folded) and any(c.isdecimal() for c in folded)):
        errors.append(_("密码须同时包含字母和数字"))
    elif character_classes(folded) < policy.min_classes:
        errors.append(
            _(
                "密码须至少包含大写字母、小写字母、数字、符号中的 %(count)d 类",
                count=policy.min_classes,
            )
        )
    fragments = _personal_fragments(person)
    for kind, message in _CONTAINMENT_MESSAGES:
        if any(fragment in lowered for fragment in fragments[kind]):
            errors.append(_(message))
    if lowered in common_passwords():
        errors.append(_("密码过于常见，请换一个"))
    # An over-long password is already refused; scoring it would only cost time.
    if policy.min_score > 0 and not too_long:
        score = _zxcvbn(password, fragments)["score"]
        if score < policy.min_score:
            errors.append(
                _(
                    "密码强度不足（当前 %(score)d 分，至少需要 %(min)d 分）",
                    score=score,
                    min=policy.min_score,
                )
            )
    return errors


def character_classes(password: str) -> int:
    """How many of upper case, lower case (or uncased letters), digits and symbols it uses."""
    upper = any(c.isupper() for c in password)
    # Letters without case (汉字, Arabic…) count with lower case: they are still letters.
    lower = any(c.isalpha() and not c.isupper() for c in password)
    digit = any(c.isdecimal() for c in password)
    symbol = any(not c.isalnum() and not c.isspace() for c in password)
    return upper + lower + digit + symbol


def password_strength(password: str, person: PersonalInfo | None = None) -> Strength:
    """The score, bar width, label and suggestions the strength meter shows for *password*."""
    if not password:
        return Strength(score=0, percent=0, label=_label(0), feedback=[_(_GENERIC_SUGGESTION)])
    result = _zxcvbn(password, _personal_fragments(person or PersonalInfo()))
    score = int(result["score"])
    return Strength(
        score=score,
        percent=score * 25,
        label=_label(score),
        feedback=_feedback(score, result),
    )


@functools.cache
def common_passwords() -> frozenset[str]:
    """The lowercase common passwords refused outright (zxcvbn's top 10,000 and Chinese ones)."""
    lines = _COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip())


# --- personal information --------------------------------------------------------------------

_CONTAINMENT_MESSAGES = (
    ("account", N_("密码不能包含您的学工号")),
    ("name", N_("密码不能包含您的姓名（含拼音）")),
    ("phone", N_("密码不能包含您的手机号")),
    ("id_number", N_("密码不能包含您的证件号")),
    ("email", N_("密码不能包含您的邮箱")),
)

#: Shorter fragments would refuse too many innocent passwords (a 2-letter initial, say).
_MIN_FRAGMENT = 3


def _personal_fragments(person: PersonalInfo) -> dict[str, set[str]]:
    """Lowercase NFKC pieces of each detail that a password must not contain."""
    fragments: dict[str, set[str]] = {
        "account": {_fold(person.account or "").strip()},
        "name": _name_fragments(_fold(person.name or "")),
        "phone": _phone_fragments(_fold(person.phone or "")),
        "id_number": _id_number_fragments(_fold(person.id_number or "")),
        "email": _email_fragments(_fold(person.email or "")),
    }
    return {
        kind: {piece for piece in pieces if len(piece) >= _MIN_FRAGMENT or _is_hanzi_name(piece)}
        for kind, pieces in fragments.items()
    }


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def _has_hanzi(text: str) -> bool:
    return any("\u4e00" <= char <= "\u9fff" for char in text)


def _is_hanzi_name(piece: str) -> bool:
    # Two Hanzi (张三) are a whole name, and as telling as eight Latin letters.
    return len(piece) >= 2 and _has_hanzi(piece)


def _name_fragments(name: str) -> set[str]:
    """The name without spaces; for Hanzi also its pinyin, full and initials."""
    words = [word for word in re.split(r"[\s·.•-]+", name.lower()) if word]
    name = "".join(words)
    if not name:
        return set()
    pieces = {name}
    if not _has_hanzi(name):
        # Latin names (international students): each longer part on its own, too.
        return pieces | {word for word in words if len(word) >= 4}
    try:
        from pypinyin import Style, lazy_pinyin  # optional: pinyin checks when installed
    except ImportError:
        return pieces
    syllables = lazy_pinyin(name, style=Style.NORMAL, errors="ignore")
    pieces.add("".join(syllables))
    pieces.add("".join(syllable[0] for syllable in syllables if syllable))
    # The given name alone (晓明 → xiaoming) is a favourite too, but only when long enough not
    # to catch ordinary words.
    if len(syllables) > 1 and len(given := "".join(syllables[1:])) >= 5:
        pieces.add(given)
    return pieces


def _phone_fragments(phone: str) -> set[str]:
    """The last 8 digits, which hold the full number and survive a +86 prefix."""
    digits = re.sub(r"\D", "", phone)
    return {digits[-8:]} if len(digits) >= 6 else set()


def _id_number_fragments(id_number: str) -> set[str]:
    """The ID number, its first and last 6 characters and, for resident IDs, the birth date."""
    id_number = re.sub(r"\s", "", id_number.lower())
    if len(id_number) < 8:
        return {id_number}
    pieces = {id_number, id_number[:6], id_number[-6:]}
    if len(id_number) == 18 and id_number[6:14].isdigit():
        pieces.add(id_number[6:14])  # YYYYMMDD
    elif len(id_number) == 15 and id_number[6:12].isdigit():
        pieces.add(id_number[6:12])  # first-generation IDs: YYMMDD
    return pieces


def _email_fragments(email: str) -> set[str]:
    """The address and its local part."""
    email = email.strip().lower()
    return {email, email.partition("@")[0]} if email else set()


# --- strength --------------------------------------------------------------------------------


def _zxcvbn(password: str, fragments: Mapping[str, set[str]]) -> dict[str, Any]:
    user_inputs = sorted(piece for pieces in fragments.values() for piece in pieces)
    result: dict[str, Any] = zxcvbn(password[:ZXCVBN_MAX_INPUT], user_inputs=user_inputs)
    return result


_LABELS = (N_("很弱"), N_("弱"), N_("一般"), N_("强"), N_("很强"))


def _label(score: int) -> str:
    return _(_LABELS[max(0, min(score, 4))])


_GENERIC_SUGGESTION = N_("再加一两个不常见的词或加长密码，长度比特殊符号更管用")
_PERSONAL_SUGGESTION = N_("不要使用学工号、姓名、手机号、证件号等个人信息")

#: zxcvbn's English warnings and suggestions (matched by a fragment) → our own Chinese ones.
_FEEDBACK = (
    ("rows of keys", N_("键盘上连在一起的按键（如 qwerty、1qaz）很容易被猜到")),
    ("keyboard pattern", N_("键盘上连在一起的按键（如 qwerty、1qaz）很容易被猜到")),
    ("repeat", N_("重复的字符（如 aaa、abcabc）很容易被猜到")),
    ("sequences", N_("连续的字母或数字（如 abc、6543）很容易被猜到")),
    ("years", N_("年份和日期很容易被猜到，尤其是与您有关的")),
    ("dates", N_("年份和日期很容易被猜到，尤其是与您有关的")),
    ("common password", N_("这是常见密码或与常见密码相似")),
    ("commonly used password", N_("这是常见密码或与常见密码相似")),
    ("word by itself", N_("单独一个词很容易被猜到")),
    ("names and surnames", N_("姓名很容易被猜到")),
    ("reversed words", N_("倒着写的单词并不难猜")),
    ("predictable substitutions", N_("用 @ 代替 a 这类替换并不难猜")),
    ("capitalization", N_("只改大小写帮助不大")),
    ("all-uppercase", N_("只改大小写帮助不大")),
)


def _feedback(score: int, result: Mapping[str, Any]) -> list[str]:
    """A few Chinese suggestions; zxcvbn's English never reaches the user."""
    if score >= 3:
        return []
    english = [result["feedback"].get("warning") or "", *result["feedback"].get("suggestions", [])]
    chosen: list[str] = []
    if any(m.get("dictionary_name") == "user_inputs" for m in result.get("sequence", [])):
        chosen.append(_PERSONAL_SUGGESTION)
    for text in english:
        for fragment, chinese in _FEEDBACK:
            if fragment in text.lower() and chinese not in chosen:
                chosen.append(chinese)
    chosen.append(_GENERIC_SUGGESTION)
    return [_(message) for message in chosen[:3]]
