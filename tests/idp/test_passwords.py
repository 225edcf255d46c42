"""Password hashing: argon2id for new passwords, and the legacy hashes staff bring along."""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Callable

import bcrypt
import pytest

from idp.auth.passwords import (
    Argon2Params,
    PasswordHasher,
    VerifyResult,
    dummy_verify,
    hasher_from_config,
    is_legacy_hash,
    is_valid_legacy_hash,
)

#: Cheap parameters so that the file runs in seconds; the real ones are tested on their own.
FAST = Argon2Params(memory_kib=1024, time_cost=1, parallelism=1)
PASSWORD = "Lanzhou-1909"
WRONG = "Lanzhou-1910"
SALT = b"\x8a\x01salt\xff\x10"


@pytest.fixture
def hasher() -> PasswordHasher:
    """A hasher with the fast test parameters."""
    return PasswordHasher(FAST)


# --- how the legacy values are written, following each format's own description -------------


def rfc2307(scheme: str, new: Callable[[bytes], object], *, salted: bool) -> Callable[[str], str]:
    """An LDAP ``userPassword`` writer: ``{SCHEME}`` + base64(digest(password + salt) + salt)."""

    def make(password: str) -> str:
        salt = SALT if salted else b""
        digest = new(password.encode() + salt).digest()  # type: ignore[attr-defined]
        return "{" + scheme + "}" + base64.b64encode(digest + salt).decode()

    return make


def ab64(raw: bytes) -> str:
    """passlib's adapted base64: ``.`` for ``+``, no padding."""
    return base64.b64encode(raw).decode().rstrip("=").replace("+", ".")


def django_pbkdf2(password: str) -> str:
    """Django's ``pbkdf2_sha256$iterations$salt$base64(hash)``; the salt is used as text."""
    salt = "Xy7pQ2mN8rT4"
    raw = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 1000)
    return f"pbkdf2_sha256$1000${salt}${base64.b64encode(raw).decode()}"


def passlib_pbkdf2(prefix: str, digest: str = "sha256") -> Callable[[str], str]:
    """passlib's ``<prefix><iterations>$<ab64 salt>$<ab64 hash>``, LDAP or modular spelling."""

    def make(password: str) -> str:
        raw = hashlib.pbkdf2_hmac(digest, password.encode(), SALT, 1200)
        return f"{prefix}1200${ab64(SALT)}${ab64(raw)}"

    return make


def bcrypt_hash(prefix: bytes = b"2b", tag: str = "") -> Callable[[str], str]:
    """A real bcrypt hash at the lowest cost, optionally relabelled (``$2y$``) or ``{CRYPT}``."""

    def make(password: str) -> str:
        stored = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4, prefix=prefix)).decode()
        if tag == "2y":
            return "$2y$" + stored[4:]
        return tag + stored

    return make


LEGACY = {
    "SSHA": rfc2307("SSHA", hashlib.sha1, salted=True),
    "SHA": rfc2307("SHA", hashlib.sha1, salted=False),
    "SMD5": rfc2307("SMD5", hashlib.md5, salted=True),
    "MD5": rfc2307("MD5", hashlib.md5, salted=False),
    "SSHA256": rfc2307("SSHA256", hashlib.sha256, salted=True),
    "SHA256": rfc2307("SHA256", hashlib.sha256, salted=False),
    "SSHA512": rfc2307("SSHA512", hashlib.sha512, salted=True),
    "SHA512": rfc2307("SHA512", hashlib.sha512, salted=False),
    "lowercase ssha": rfc2307("ssha", hashlib.sha1, salted=True),
    "mixed-case Ssha256": rfc2307("Ssha256", hashlib.sha256, salted=True),
    "bcrypt $2a$": bcrypt_hash(b"2a"),
    "bcrypt $2b$": bcrypt_hash(b"2b"),
    "bcrypt $2y$": bcrypt_hash(b"2b", tag="2y"),
    "{CRYPT} bcrypt": bcrypt_hash(b"2b", tag="{CRYPT}"),
    "{crypt} bcrypt": bcrypt_hash(b"2a", tag="{crypt}"),
    "Django pbkdf2_sha256": django_pbkdf2,
    "LDAP {PBKDF2-SHA256}": passlib_pbkdf2("{PBKDF2-SHA256}"),
    "LDAP {pbkdf2-sha256}": passlib_pbkdf2("{pbkdf2-sha256}"),
    "LDAP {PBKDF2-SHA512}": passlib_pbkdf2("{PBKDF2-SHA512}", "sha512"),
    "passlib $pbkdf2-sha256$": passlib_pbkdf2("$pbkdf2-sha256$"),
    "passlib $pbkdf2$ (SHA-1)": passlib_pbkdf2("$pbkdf2$", "sha1"),
}


# --- argon2id --------------------------------------------------------------------------------


def test_new_password_is_hashed_with_argon2id_and_the_configured_params(
    hasher: PasswordHasher,
) -> None:
    """A new hash is argon2id and records the configured memory, passes and lanes."""
    stored = hasher.hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert not is_legacy_hash(stored)


def test_argon2id_hash_verifies_the_right_password_without_rehash(hasher: PasswordHasher) -> None:
    """The password that made the hash verifies, and the hash is kept as is."""
    assert hasher.verify(hasher.hash(PASSWORD), PASSWORD) == VerifyResult(
        ok=True, needs_rehash=False
    )


def test_argon2id_hash_refuses_a_wrong_password(hasher: PasswordHasher) -> None:
    """Another password does not verify and nothing is to be rehashed."""
    assert hasher.verify(hasher.hash(PASSWORD), WRONG) == VerifyResult(ok=False, needs_rehash=False)


def test_hash_made_with_lower_params_needs_rehash(hasher: PasswordHasher) -> None:
    """After the params are raised, a sign-in with an older, cheaper hash asks for a rehash."""
    stronger = PasswordHasher(Argon2Params(memory_kib=2048, time_cost=2, parallelism=1))
    assert stronger.verify(hasher.hash(PASSWORD), PASSWORD) == VerifyResult(
        ok=True, needs_rehash=True
    )


def test_argon2i_hash_verifies_and_is_upgraded_to_argon2id(hasher: PasswordHasher) -> None:
    """An argon2i hash (another argon2 type) verifies and asks to become argon2id."""
    import argon2

    stored = argon2.PasswordHasher(
        time_cost=1, memory_cost=1024, parallelism=1, type=argon2.Type.I
    ).hash(PASSWORD)
    assert hasher.verify(stored, PASSWORD) == VerifyResult(ok=True, needs_rehash=True)


def test_openldap_argon2_value_verifies_and_is_rewritten_without_prefix(
    hasher: PasswordHasher,
) -> None:
    """OpenLDAP's ``{ARGON2}$argon2id$…`` verifies and is stored again as plain argon2id."""
    stored = "{ARGON2}" + hasher.hash(PASSWORD)
    assert is_legacy_hash(stored)
    assert hasher.verify(stored, PASSWORD) == VerifyResult(ok=True, needs_rehash=True)
    assert hasher.verify(stored, WRONG).ok is False


def test_default_params_are_owasp_and_reach_the_hash() -> None:
    """Without settings the hasher uses OWASP's 7 MiB, 5 passes, 1 lane — not argon2-cffi's."""
    stored = hasher_from_config({}).hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=7168,t=5,p=1$")


def test_hashes_of_the_earlier_default_verify_and_move_to_the_current_one() -> None:
    """Hashes made with the earlier default (OWASP's 19 MiB × 2) still sign in, once rehashed."""
    earlier = PasswordHasher(Argon2Params(memory_kib=19456, time_cost=2, parallelism=1))
    stored = earlier.hash(PASSWORD)
    current = hasher_from_config({})
    assert current.verify(stored, PASSWORD) == VerifyResult(ok=True, needs_rehash=True)
    assert current.verify(stored, WRONG) == VerifyResult(ok=False, needs_rehash=False)
    assert current.verify(current.hash(PASSWORD), PASSWORD) == VerifyResult(
        ok=True, needs_rehash=False
    )


def test_hasher_from_config_reads_the_argon2_settings() -> None:
    """``ARGON2_*`` settings become the hasher's params."""
    hasher = hasher_from_config(
        {"ARGON2_MEMORY_KIB": 2048, "ARGON2_TIME_COST": 3, "ARGON2_PARALLELISM": 2}
    )
    assert hasher.params == Argon2Params(memory_kib=2048, time_cost=3, parallelism=2)
    assert hasher.hash(PASSWORD).startswith("$argon2id$v=19$m=2048,t=3,p=2$")


# --- legacy hashes ---------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", LEGACY)
def test_legacy_hash_verifies_the_right_password_and_asks_for_rehash(
    hasher: PasswordHasher, scheme: str
) -> None:
    """Each imported format verifies its own password and asks to be replaced by argon2id."""
    stored = LEGACY[scheme](PASSWORD)
    assert is_legacy_hash(stored)
    assert hasher.verify(stored, PASSWORD) == VerifyResult(ok=True, needs_rehash=True)


@pytest.mark.parametrize("scheme", LEGACY)
def test_legacy_hash_refuses_a_wrong_password(hasher: PasswordHasher, scheme: str) -> None:
    """Each imported format refuses another password."""
    assert hasher.verify(LEGACY[scheme](PASSWORD), WRONG) == VerifyResult(
        ok=False, needs_rehash=False
    )


def test_staff_signs_in_with_legacy_ssha_password_then_hash_is_upgraded(
    hasher: PasswordHasher,
) -> None:
    """The old unified-auth password works once, is rehashed, and then verifies as argon2id."""
    result = hasher.verify(LEGACY["SSHA"](PASSWORD), PASSWORD)
    assert result.ok and result.needs_rehash
    upgraded = hasher.hash(PASSWORD)
    assert hasher.verify(upgraded, PASSWORD) == VerifyResult(ok=True, needs_rehash=False)


def test_legacy_hash_of_a_chinese_password_verifies(hasher: PasswordHasher) -> None:
    """Non-ASCII passwords were hashed as UTF-8 by the old directory, and verify."""
    stored = LEGACY["SSHA"]("兰州大学abc123")
    assert hasher.verify(stored, "兰州大学abc123").ok
    assert not hasher.verify(stored, "兰州大学abc124").ok


def test_bcrypt_uses_only_the_first_72_bytes_as_the_old_systems_did(
    hasher: PasswordHasher,
) -> None:
    """A password over 72 bytes verifies against the hash of its first 72 bytes, without error."""
    long_password = "x" * 72 + "anything after byte 72"
    stored = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    assert hasher.verify(stored, long_password) == VerifyResult(ok=True, needs_rehash=True)


#: Stored values no password can match; ``{SSHA}`` and shorter PBKDF2 keys among them.
MALFORMED = [
    "",
    "{SSHA}",
    "{SHA}AAAA",
    "{SSHA}not-base64!!",
    "{SHA}" + base64.b64encode(b"too short").decode(),
    "{SSHA}" + base64.b64encode(bytes(20)).decode(),  # a SHA-1 size, but no salt
    "$2b$garbage",
    "$2b$31$" + "a" * 53,
    "pbkdf2_sha256$x$y$z",
    "pbkdf2_sha256$1000$salt$not base64!",
    "pbkdf2_md4$1000$salt$aGFzaA==",
    "$pbkdf2-sha256$1000$$",
    "{PBKDF2-SHA256}99999999999$c2FsdA$aGFzaA",
    "{FOO}bar",
    "{CRYPT}$1$saltsalt$md5cryptpayload",
    "$argon2id$v=19$m=1024,t=1,p=1$broken",
    "{ARGON2}$argon2id$v=19$m=1024,t=1,p=1$broken",
    "plain text password",
    "$2b$10$tooshort",
    "$2b$03$" + "a" * 53,  # bcrypt's lowest cost is 4
    "pbkdf2_sha256$１０００$salt$" + base64.b64encode(bytes(32)).decode(),
    "pbkdf2_sha256$1000$salt$" + base64.b64encode(bytes(15)).decode(),
    "{PBKDF2-SHA256}junk",
    f"{{PBKDF2-SHA256}}1200${ab64(SALT)}${ab64(bytes(8))}",
    f"$pbkdf2-sha256$1200${ab64(SALT)}$AA",
]


@pytest.mark.parametrize("stored", MALFORMED)
def test_malformed_stored_value_fails_without_raising(
    hasher: PasswordHasher, stored: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A corrupt or unsupported stored value reads as a wrong password; the log omits it."""
    with caplog.at_level(logging.WARNING, logger="idp.auth.passwords"):
        assert hasher.verify(stored, PASSWORD) == VerifyResult(ok=False, needs_rehash=False)
    assert caplog.records, "a malformed hash is worth a warning"
    assert all(stored not in record.getMessage() for record in caplog.records if stored)


@pytest.mark.parametrize("scheme", LEGACY)
def test_every_supported_legacy_format_is_valid_for_import(scheme: str) -> None:
    """The import's format check accepts what verification accepts."""
    assert is_valid_legacy_hash(LEGACY[scheme](PASSWORD))


@pytest.mark.parametrize("stored", MALFORMED)
def test_malformed_legacy_value_is_invalid_for_import(stored: str) -> None:
    """The import refuses what verification would call malformed."""
    assert not is_valid_legacy_hash(stored)


def test_legacy_format_check_hashes_nothing() -> None:
    """Checking costly values (bcrypt cost 16, 10 million PBKDF2 rounds) takes no time."""
    slow = [
        "$2b$16$" + "a" * 53,
        f"$pbkdf2-sha256$10000000${ab64(SALT)}${ab64(bytes(32))}",
    ]
    start = time.perf_counter()
    assert all(is_valid_legacy_hash(stored) for stored in slow * 100)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("spelling", ["django", "passlib", "ldap"])
def test_truncated_pbkdf2_key_is_malformed_not_a_one_in_256_match(
    hasher: PasswordHasher, spelling: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A 1-byte stored key would let in about one random password in 256."""

    def stored_for(password: str) -> str:
        key = hashlib.pbkdf2_hmac("sha256", password.encode(), b"saltsalt", 1000)[:1]
        if spelling == "django":
            return "pbkdf2_sha256$1000$saltsalt$" + base64.b64encode(key).decode()
        prefix = "$pbkdf2-sha256$" if spelling == "passlib" else "{PBKDF2-SHA256}"
        return f"{prefix}1000${ab64(b'saltsalt')}${ab64(key)}"

    stored = stored_for(PASSWORD)
    guess = next(f"guess-{i}" for i in range(10_000) if stored_for(f"guess-{i}") == stored)
    with caplog.at_level(logging.WARNING, logger="idp.auth.passwords"):
        assert hasher.verify(stored, guess) == VerifyResult(ok=False, needs_rehash=False)
        assert hasher.verify(stored, PASSWORD) == VerifyResult(ok=False, needs_rehash=False)
    assert len(caplog.records) == 2
    assert not is_valid_legacy_hash(stored)


def test_account_without_password_fails(hasher: PasswordHasher) -> None:
    """No stored hash (never activated) never verifies."""
    assert hasher.verify(None, PASSWORD) == VerifyResult(ok=False, needs_rehash=False)


def test_unrecognised_values_are_not_called_legacy() -> None:
    """``is_legacy_hash`` is true only for formats it can verify, not for argon2 or garbage."""
    assert not is_legacy_hash("$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA")
    assert not is_legacy_hash("{FOO}bar")
    assert not is_legacy_hash("")
    assert not is_legacy_hash("{CRYPT}$1$saltsalt$md5cryptpayload")
    assert is_legacy_hash("{ssha}anything")


# --- timing ----------------------------------------------------------------------------------


def fastest(action: Callable[[], object]) -> float:
    """The quickest of five runs, in CPU seconds of this thread: other processes on a busy
    machine (CI runs browsers and servers beside the tests) do not inflate it."""
    timings = []
    for _ in range(5):
        start = time.thread_time()
        action()
        timings.append(time.thread_time() - start)
    return min(timings)


@pytest.fixture
def timed_hasher() -> PasswordHasher:
    """A hasher slow enough (a few ms) for timings to rise above noise."""
    hasher = PasswordHasher(Argon2Params(memory_kib=8192, time_cost=2, parallelism=1))
    dummy_verify(hasher)  # the first call also makes the dummy hash
    return hasher


def test_dummy_verify_takes_as_long_as_a_real_verify(timed_hasher: PasswordHasher) -> None:
    """An unknown account costs at least half a real argon2 verify: no timing-based enumeration."""
    stored = timed_hasher.hash(PASSWORD)
    real = fastest(lambda: timed_hasher.verify(stored, WRONG))
    assert fastest(lambda: dummy_verify(timed_hasher)) >= real / 2


@pytest.mark.parametrize("stored", [None, "{FOO}bar", LEGACY["SSHA"](PASSWORD)])
def test_unknown_account_and_fast_legacy_values_spend_argon2_time(
    timed_hasher: PasswordHasher, stored: str | None
) -> None:
    """No hash, a broken one and microsecond LDAP digests are padded to an argon2 verify."""
    argon2_hash = timed_hasher.hash(PASSWORD)
    real = fastest(lambda: timed_hasher.verify(argon2_hash, WRONG))
    assert fastest(lambda: timed_hasher.verify(stored, WRONG)) >= real / 2
