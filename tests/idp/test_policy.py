"""The password policy (letters and digits, 8–64, nothing personal, nothing common) and meter."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from flask_babel import Babel

from idp.auth import policy as policy_module
from idp.auth.policy import (
    PasswordPolicy,
    PersonalInfo,
    Strength,
    check_password,
    common_passwords,
    password_strength,
)

ZHANG = PersonalInfo(
    account="320180912345",
    name="张伟明",
    phone="+86 139 0731 9465",
    id_number="62010219980512341X",
    email="lotus.reader@example.edu.cn",
)
POLICY = PasswordPolicy()


def test_policy_defaults_follow_the_manual() -> None:
    """At least 8 characters (manual 2.1.2 step 4), at most 64, zxcvbn score at least 1."""
    assert PasswordPolicy() == PasswordPolicy(min_length=8, max_length=64, min_score=1)


def test_policy_reads_the_password_settings() -> None:
    """``PASSWORD_*`` settings become the policy."""
    config = {"PASSWORD_MIN_LENGTH": 10, "PASSWORD_MAX_LENGTH": 128, "PASSWORD_MIN_SCORE": 3}
    assert PasswordPolicy.from_config(config) == PasswordPolicy(10, 128, 3)


def test_good_password_passes() -> None:
    """A long password with letters and digits and nothing personal breaks no rule."""
    assert check_password("Lanzhou-River-Mist-42", POLICY, ZHANG) == []


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("k7Qp2xZ", "密码长度须为 8–64 个字符"),
        ("violet-lantern-orchard", "密码须同时包含字母和数字"),
        ("20240917153046", "密码须同时包含字母和数字"),
        ("Qz7!vR320180912345", "密码不能包含您的学工号"),
        ("Quill-07319465-k", "密码不能包含您的手机号"),
        ("Otter620102-jam", "密码不能包含您的证件号"),
        ("Harbor-12341x-y", "密码不能包含您的证件号"),
        ("Sparrow19980512!", "密码不能包含您的证件号"),
        ("张伟明Kite-88q", "密码不能包含您的姓名（含拼音）"),
        ("ZhangWeiming#83k", "密码不能包含您的姓名（含拼音）"),
        ("zwm-Orbit-6612", "密码不能包含您的姓名（含拼音）"),
        ("Lotus.Reader-7&Q", "密码不能包含您的邮箱"),
    ],
    ids=[
        "too short",
        "letters only",
        "digits only",
        "account",
        "phone last 8 digits",
        "id number first 6",
        "id number last 6 any case",
        "id number birthday",
        "name in hanzi",
        "name in pinyin",
        "name initials",
        "email",
    ],
)
def test_each_rule_is_reported_alone(password: str, message: str) -> None:
    """A password that breaks exactly one rule gets exactly that rule's message."""
    assert check_password(password, POLICY, ZHANG) == [message]


@pytest.mark.parametrize(
    "password",
    [
        "Lanzhou-River\tMist-42",  # a tab, sent by a script: Tab moves on in a password box
        "Lanzhou-River\nMist-42",
        "Lanzhou\u200bRiver-Mist-42",  # zero-width space
        "Lanzhou-River-Mist-42\u202e",  # right-to-left override
        "\ufeffLanzhou-River-Mist-42",  # byte order mark
        "Lanzhou-River\u2028Mist-42",  # line separator
    ],
    ids=["tab", "line feed", "zero-width space", "bidi override", "bom", "line separator"],
)
def test_characters_nobody_could_type_again_are_refused(password: str) -> None:
    """A password that holds a control or an invisible character could never be typed at
    sign-in: refused with its own message (the fuzz crawler set one through /recover)."""
    assert check_password(password, POLICY, ZHANG) == [
        "密码不能包含换行、制表符等控制字符或看不见的字符"
    ]


def test_a_persian_zero_width_non_joiner_is_typed_and_allowed() -> None:
    """ZWNJ has a key of its own on Persian keyboards: an international student's password."""
    assert check_password("می\u200cخواهم-رفتن-42", POLICY, ZHANG) == []


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("Qz7!vR３２０１８０９１２３４５", "密码不能包含您的学工号"),
        ("ｚｈａｎｇｗｅｉｍｉｎｇ#83k", "密码不能包含您的姓名（含拼音）"),
        ("Quill-０７３１９４６５-k", "密码不能包含您的手机号"),
        ("Ｏｔｔｅｒ６２０１０２-jam", "密码不能包含您的证件号"),
        ("Ｌｏｔｕｓ．Ｒｅａｄｅｒ-7&Q", "密码不能包含您的邮箱"),
        ("ｐａｓｓｗｏｒｄ１", "密码过于常见，请换一个"),
        ("ｗｏａｉｎｉ１３１４", "密码过于常见，请换一个"),
    ],
    ids=["account", "name in pinyin", "phone", "id number", "email", "common", "common chinese"],
)
def test_full_width_characters_break_the_same_rules(password: str, message: str) -> None:
    """A Chinese IME's full-width letters and digits (２０２４, ｐａｓｓ) hide nothing."""
    assert check_password(password, POLICY, ZHANG) == [message]


def test_common_password_is_refused() -> None:
    """Chinese favourites such as woaini1314 are refused as common."""
    lenient = PasswordPolicy(min_score=0)
    assert check_password("woaini1314", lenient, ZHANG) == ["密码过于常见，请换一个"]
    assert check_password("Qq123456", lenient, ZHANG) == ["密码过于常见，请换一个"]


def test_common_list_holds_the_usual_suspects() -> None:
    """The list has thousands of entries, including the Chinese favourites, all lowercase."""
    common = common_passwords()
    assert len(common) >= 10_000
    favourites = {"123456", "5201314", "woaini1314", "qq123456", "a123456", "abc123456"}
    assert favourites | {"1qaz2wsx", "qwe123", "zxcvbnm", "iloveyou", "password1"} <= common
    assert all(entry == entry.lower() for entry in common)


def test_weak_password_is_refused_with_its_score() -> None:
    """Below the minimum zxcvbn score, the message gives the score and the minimum."""
    strict = PasswordPolicy(min_score=4)
    assert check_password("Bluebird2024", strict, ZHANG) == [
        "密码强度不足（当前 2 分，至少需要 4 分）"
    ]


def test_strength_rule_is_off_at_min_score_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a minimum score of 0, zxcvbn is not even run."""
    monkeypatch.setattr(policy_module, "zxcvbn", _must_not_run)
    assert check_password("Lanzhou-River-Mist-42", PasswordPolicy(min_score=0), ZHANG) == []


def test_too_long_password_is_refused_without_calling_zxcvbn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A password over the maximum is refused at once: zxcvbn would be slow on it."""
    monkeypatch.setattr(policy_module, "zxcvbn", _must_not_run)
    start = time.perf_counter()
    errors = check_password("Ab1-" * 5000, POLICY, ZHANG)
    assert errors == ["密码长度须为 8–64 个字符"]
    assert time.perf_counter() - start < 1


def test_long_allowed_password_is_scored_on_a_prefix_quickly() -> None:
    """When the maximum is high, zxcvbn sees only a prefix, so even 1,000 characters are fast."""
    roomy = PasswordPolicy(max_length=1024)
    start = time.perf_counter()
    assert check_password("Ab1-" * 250, roomy, ZHANG) == []
    assert time.perf_counter() - start < 2


def test_every_broken_rule_is_reported() -> None:
    """Several broken rules give several messages, in a stable order."""
    assert check_password("123456", POLICY, ZHANG) == [
        "密码长度须为 8–64 个字符",
        "密码须同时包含字母和数字",
        "密码过于常见，请换一个",
        "密码强度不足（当前 0 分，至少需要 1 分）",
    ]
    assert check_password("zwm13", POLICY, ZHANG)[:2] == [
        "密码长度须为 8–64 个字符",
        "密码不能包含您的姓名（含拼音）",
    ]


def test_short_name_initials_are_not_checked() -> None:
    """Two-letter initials (张三 → zs) would refuse too much, so only longer ones count."""
    assert check_password("zs-Orbit-6612", POLICY, PersonalInfo(name="张三")) == []


def test_two_character_hanzi_name_is_checked() -> None:
    """A two-character name (张三) is short but whole, so a password may not contain it."""
    assert check_password("张三Kite-88q-Orbit", POLICY, PersonalInfo(name="张三")) == [
        "密码不能包含您的姓名（含拼音）"
    ]


def test_latin_name_parts_are_checked() -> None:
    """An international student's surname alone is caught too, whatever its case."""
    person = PersonalInfo(name="Anna Petrova")
    assert check_password("Kite-88q-PETROVA", POLICY, person) == ["密码不能包含您的姓名（含拼音）"]


def test_missing_personal_details_are_skipped() -> None:
    """A visitor without phone or ID number is only held to the other rules."""
    assert check_password("Lanzhou-River-Mist-42", POLICY, PersonalInfo()) == []


def test_messages_go_through_babel_in_a_request() -> None:
    """Inside a request the messages are translated (here: no catalogue, so the msgid)."""
    app = Flask(__name__)
    Babel(app)
    with app.test_request_context():
        assert check_password("k7Qp2xZ", POLICY, ZHANG) == ["密码长度须为 8–64 个字符"]
        assert password_strength("123456").label == "很弱"


# --- strength meter --------------------------------------------------------------------------


def test_most_common_password_scores_zero() -> None:
    """ "123456" is the weakest there is: score 0, an empty bar, 很弱, and advice in Chinese."""
    strength = password_strength("123456")
    assert (strength.score, strength.percent, strength.label) == (0, 0, "很弱")
    assert strength.feedback
    assert all(_has_chinese(item) for item in strength.feedback)


def test_long_random_passphrase_scores_four() -> None:
    """A long passphrase of unrelated words fills the bar: score 4, 很强, no advice."""
    assert password_strength("violet lantern 47 orchard quietly") == Strength(
        score=4, percent=100, label="很强", feedback=[]
    )


@pytest.mark.parametrize(
    ("score", "percent", "label"),
    [(0, 0, "很弱"), (1, 25, "弱"), (2, 50, "一般"), (3, 75, "强"), (4, 100, "很强")],
)
def test_score_maps_to_bar_width_and_label(
    monkeypatch: pytest.MonkeyPatch, score: int, percent: int, label: str
) -> None:
    """Each zxcvbn score has its bar width (in quarters) and Chinese label."""
    monkeypatch.setattr(policy_module, "zxcvbn", lambda *args, **kwargs: _result(score))
    strength = password_strength("whatever")
    assert (strength.score, strength.percent, strength.label) == (score, percent, label)


def test_keyboard_pattern_feedback_is_chinese() -> None:
    """zxcvbn's English warning about keyboard rows reaches the user as our Chinese sentence."""
    feedback = password_strength("qwertyuiop[]").feedback
    assert "键盘上连在一起的按键（如 qwerty、1qaz）很容易被猜到" in feedback
    assert all(_has_chinese(item) for item in feedback)


def test_personal_details_lower_the_strength() -> None:
    """A password built from the person's name and birthday scores lower for that person."""
    assert password_strength("zhangweiming1998").score == 4
    strength = password_strength("zhangweiming1998", ZHANG)
    assert strength.score <= 1
    assert "不要使用学工号、姓名、手机号、证件号等个人信息" in strength.feedback


def test_empty_password_is_very_weak() -> None:
    """Nothing typed yet shows an empty bar."""
    assert password_strength("").percent == 0


# --- helpers ---------------------------------------------------------------------------------


def _must_not_run(*args: Any, **kwargs: Any) -> dict[str, Any]:
    raise AssertionError("zxcvbn must not run here")


def _result(score: int) -> dict[str, Any]:
    """The parts of a zxcvbn result the meter reads."""
    return {"score": score, "feedback": {"warning": "", "suggestions": []}, "sequence": []}


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= char <= "\u9fff" for char in text)
