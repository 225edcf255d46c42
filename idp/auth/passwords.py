"""Password hashing (argon2id) and verification of the legacy hashes imported from old directories.

Staff keep their old unified-auth password (manual 2.1.4): their accounts arrive with LDAP
``userPassword`` values, bcrypt or PBKDF2 strings. Each verifies here once; on success the caller
stores ``hasher.hash(password)`` so that only argon2id remains over time.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import argon2
import bcrypt
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

logger = logging.getLogger(__name__)

#: A stored PBKDF2 iteration count above this is treated as corrupt rather than run: a bad
#: import must not be able to pin a worker for minutes (Django 5.1 uses 1,000,000).
MAX_PBKDF2_ITERATIONS = 10_000_000
#: Same for bcrypt: cost 16 already takes seconds; 31 would take hours.
MAX_BCRYPT_COST = 16
#: Stored argon2 values (imports, ``{ARGON2}``) costlier than these are treated as corrupt too:
#: a verify allocates the memory named in the hash (4 GiB took 17 s here) and runs its passes.
#: The bounds admit RFC 9106's recommendations (2 GiB × 1 pass) and libsodium's "sensitive"
#: level (1 GiB × 4 passes); hashes with this app's own parameters are always verified.
MAX_ARGON2_MEMORY_KIB = 2 * 1024 * 1024
#: Passes × KiB: the work of one verify.
MAX_ARGON2_WORK = 4 * 1024 * 1024
#: Lanes, each a thread while verifying.
MAX_ARGON2_PARALLELISM = 64
#: A stored PBKDF2 key shorter than this is corrupt: verification compares only the bytes
#: stored, so a 1-byte key would accept one random password in 256.
MIN_PBKDF2_KEY_BYTES = 16
#: bcrypt only ever looked at the first 72 bytes; bcrypt>=5 raises instead of truncating.
BCRYPT_MAX_PASSWORD_BYTES = 72
#: The bcrypt spellings found in exports: $2a$/$2b$ (OpenBSD) and $2y$ (PHP's name for $2b$).
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


@dataclass(frozen=True)
class Argon2Params:
    """argon2id cost parameters; the defaults are OWASP's 7 MiB, 5 passes, 1 lane.

    OWASP lists five settings of equal strength (46 MiB × 1 pass, 19 × 2, 12 × 3, 9 × 4, 7 × 5).
    The smallest memory is the cheapest for a server: a verify sweeps its memory through the
    core's caches, and the Python of the rest of the sign-in pays for refilling them
    (``benchmarks/login.py``: 79–86 sign-ins/s on two cores against 65–71 with 19 MiB × 2).
    Keycloak uses the same default.
    """

    memory_kib: int = 7168
    time_cost: int = 5
    parallelism: int = 1


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of checking a password against a stored hash."""

    ok: bool
    #: True when ``ok`` and the stored value is legacy or argon2 with other parameters than the
    #: configured ones: the caller should store ``hasher.hash(password)``.
    needs_rehash: bool


_FAILED = VerifyResult(ok=False, needs_rehash=False)


class PasswordHasher:
    """Hashes new passwords with argon2id and verifies argon2 and legacy stored values."""

    def __init__(self, params: Argon2Params) -> None:
        self.params = params
        self._argon2 = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            type=argon2.Type.ID,
        )

    def hash(self, password: str) -> str:
        """An argon2id encoded string (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``)."""
        return self._argon2.hash(password)

    def verify(self, stored: str | None, password: str) -> VerifyResult:
        """Check *password* against *stored*; never raises for a malformed stored value."""
        if stored is None:
            dummy_verify(self)
            return _FAILED
        try:
            result = self._verify(stored, password)
        except (ValueError, TypeError, UnicodeError):
            # binascii.Error is a ValueError; a corrupt import must read as a wrong password.
            result = None
        if result is None:
            # The value itself is never logged: even a broken hash is password material.
            logger.warning("stored password hash is malformed or of an unknown scheme")
            dummy_verify(self)
            return _FAILED
        return result

    def _verify(self, stored: str, password: str) -> VerifyResult | None:
        """Dispatch on the stored format; ``None`` means malformed or unsupported."""
        if is_argon2_hash(stored):
            return self._verify_argon2(stored, password, legacy=False)
        match = _RFC2307.match(stored)
        if match is not None and match.group(1).upper() == "ARGON2":
            # OpenLDAP's pw-argon2 module writes ``{ARGON2}$argon2id$…``.
            if not is_argon2_hash(match.group(2)):
                return None
            return self._verify_argon2(match.group(2), password, legacy=True)
        legacy = _parse_legacy(stored)
        if legacy is None:
            return None
        ok = legacy.matches(password)
        if isinstance(legacy, _Digest):
            # These digests take microseconds; without the padding a timing probe could
            # tell a not-yet-migrated account from an unknown one.
            dummy_verify(self)
        # Any legacy value that verifies is replaced by argon2id.
        return VerifyResult(ok=ok, needs_rehash=ok)

    def _verify_argon2(self, stored: str, password: str, *, legacy: bool) -> VerifyResult | None:
        try:
            params = argon2.extract_parameters(stored)
        except InvalidHashError:
            return None
        own = (params.memory_cost, params.time_cost, params.parallelism) == (
            self.params.memory_kib,
            self.params.time_cost,
            self.params.parallelism,
        )
        if not (own or _affordable(params)):
            return None
        try:
            self._argon2.verify(stored, password)
        except VerifyMismatchError:
            return _FAILED
        except (InvalidHashError, VerificationError):
            return None
        return VerifyResult(ok=True, needs_rehash=legacy or self._argon2.check_needs_rehash(stored))


def hasher_from_config(config: Mapping[str, Any]) -> PasswordHasher:
    """A hasher with the app's ``ARGON2_*`` settings (missing keys take the OWASP defaults)."""
    defaults = Argon2Params()
    return PasswordHasher(
        Argon2Params(
            memory_kib=int(config.get("ARGON2_MEMORY_KIB", defaults.memory_kib)),
            time_cost=int(config.get("ARGON2_TIME_COST", defaults.time_cost)),
            parallelism=int(config.get("ARGON2_PARALLELISM", defaults.parallelism)),
        )
    )


def is_legacy_hash(stored: str) -> bool:
    """True for an imported format this module verifies (LDAP ``{SCHEME}``, bcrypt, PBKDF2).

    Only the spelling is looked at; :func:`is_valid_legacy_hash` also checks the contents.
    """
    if stored.startswith((*_BCRYPT_PREFIXES, "$pbkdf2", "pbkdf2_")):
        return True
    match = _RFC2307.match(stored)
    if match is None:
        return False
    scheme, payload = match.group(1).upper(), match.group(2)
    return (
        scheme in _DIGESTS
        or scheme.startswith("PBKDF2")
        or (scheme == "CRYPT" and payload.startswith(_BCRYPT_PREFIXES))
        or (scheme == "ARGON2" and is_argon2_hash(payload))
    )


def is_valid_legacy_hash(stored: str) -> bool:
    """True when *stored* is a legacy value that parses completely, so some password can match.

    Checks what verification would refuse as malformed (base64, digest and key lengths, salt,
    iteration count, bcrypt cost) without hashing anything: cheap enough for every import row.
    """
    match = _RFC2307.match(stored)
    if match is not None and match.group(1).upper() == "ARGON2":
        return is_valid_argon2_hash(match.group(2))
    return _parse_legacy(stored) is not None


def is_argon2_hash(stored: str) -> bool:
    """True for an argon2 encoded string (what this module writes), as opposed to a legacy one."""
    return stored.startswith("$argon2")


def is_valid_argon2_hash(stored: str) -> bool:
    """True when *stored* is an argon2 encoded string with sane parameters, salt and tag."""
    try:
        params = argon2.extract_parameters(stored)
    except InvalidHashError:
        return False
    salt, tag = stored.split("$")[-2:]
    return (
        min(params.time_cost, params.memory_cost, params.parallelism) >= 1
        and _affordable(params)
        and len(_b64decode(salt, padded=False) or b"") >= 8
        and len(_b64decode(tag, padded=False) or b"") >= 16
    )


def _affordable(params: argon2.Parameters) -> bool:
    """Whether verifying against a hash with ``params`` costs what a sign-in may spend."""
    return (
        params.memory_cost <= MAX_ARGON2_MEMORY_KIB
        and params.time_cost * params.memory_cost <= MAX_ARGON2_WORK
        and params.parallelism <= MAX_ARGON2_PARALLELISM
    )


def dummy_verify(hasher: PasswordHasher) -> None:
    """Spend the time of a real argon2 verify: unknown accounts answer as slowly as known ones."""
    with contextlib.suppress(VerifyMismatchError):
        hasher._argon2.verify(_dummy_hash(hasher.params), "not the password")


@functools.cache
def _dummy_hash(params: Argon2Params) -> str:
    # One per parameter set and process: a hash costs as much as a verify.
    return PasswordHasher(params).hash("dummy password used only to spend time")


def _b64decode(text: str, *, padded: bool = True, adapted: bool = False) -> bytes | None:
    """Strict base64 (``adapted``: passlib's ``.`` for ``+``); ``None`` when it is not base64."""
    if adapted:
        text = text.replace(".", "+")
    if not padded:
        text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        return None


def _parse_legacy(stored: str) -> _Digest | _Bcrypt | _Pbkdf2 | None:
    """The parsed legacy value, or ``None`` when malformed or of an unsupported scheme."""
    if stored.startswith(_BCRYPT_PREFIXES):
        return _parse_bcrypt(stored)
    if stored.startswith("$pbkdf2"):
        return _parse_passlib_pbkdf2(stored)
    if stored.startswith("pbkdf2_"):
        return _parse_django_pbkdf2(stored)
    match = _RFC2307.match(stored)
    if match is None:
        return None
    scheme, payload = match.group(1).upper(), match.group(2)
    if scheme in _DIGESTS:
        return _parse_rfc2307_digest(scheme, payload)
    if scheme == "CRYPT" and payload.startswith(_BCRYPT_PREFIXES):
        return _parse_bcrypt(payload)
    if scheme.startswith("PBKDF2"):
        return _parse_ldap_pbkdf2(scheme, payload)
    # {CRYPT} with DES/MD5/SHA-crypt payloads: the stdlib crypt module is gone in 3.13.
    return None


# --- RFC 2307 ``userPassword`` digests -------------------------------------------------------

_RFC2307 = re.compile(r"\{([A-Za-z0-9-]+)\}(.*)", re.DOTALL)

#: Scheme → (hash function, salted). Salted schemes append the salt after the digest.
_DIGESTS: dict[str, tuple[Callable[[bytes], Any], bool]] = {
    "MD5": (hashlib.md5, False),
    "SMD5": (hashlib.md5, True),
    "SHA": (hashlib.sha1, False),
    "SSHA": (hashlib.sha1, True),
    "SHA256": (hashlib.sha256, False),
    "SSHA256": (hashlib.sha256, True),
    "SHA384": (hashlib.sha384, False),
    "SSHA384": (hashlib.sha384, True),
    "SHA512": (hashlib.sha512, False),
    "SSHA512": (hashlib.sha512, True),
}


@dataclass(frozen=True)
class _Digest:
    """``{SCHEME}base64(digest(password + salt) + salt)``."""

    new: Callable[[bytes], Any]
    digest: bytes
    salt: bytes

    def matches(self, password: str) -> bool:
        # MD5/SHA-1 here only check passwords hashed long ago by the old directory.
        computed = self.new(password.encode() + self.salt).digest()
        return hmac.compare_digest(computed, self.digest)


def _parse_rfc2307_digest(scheme: str, payload: str) -> _Digest | None:
    new, salted = _DIGESTS[scheme]
    raw = _b64decode(payload.strip())
    if raw is None:
        return None
    size = new(b"").digest_size
    digest, salt = raw[:size], raw[size:]
    if len(digest) != size or (salted and not salt) or (not salted and salt):
        return None
    return _Digest(new, digest, salt)


# --- bcrypt ----------------------------------------------------------------------------------

_BCRYPT = re.compile(r"\$2[aby]\$([0-9][0-9])\$[./A-Za-z0-9]{53}")
#: bcrypt refuses a cost below 4.
_MIN_BCRYPT_COST = 4


@dataclass(frozen=True)
class _Bcrypt:
    """``$2b$<cost>$<22 salt + 31 hash characters>``, with ``$2a$``/``$2y$`` as ``$2b$``."""

    stored: bytes

    def matches(self, password: str) -> bool:
        # The systems that wrote these hashes silently used only the first 72 bytes; bcrypt>=5
        # raises for longer input, so truncate as they did or such users could never sign in.
        secret = password.encode()[:BCRYPT_MAX_PASSWORD_BYTES]
        return bcrypt.checkpw(secret, self.stored)


def _parse_bcrypt(stored: str) -> _Bcrypt | None:
    match = _BCRYPT.fullmatch(stored)
    if match is None or not _MIN_BCRYPT_COST <= int(match.group(1)) <= MAX_BCRYPT_COST:
        return None
    # $2y$ is PHP's name for the fixed algorithm that OpenBSD calls $2b$: the same hash.
    if stored.startswith("$2y$"):
        stored = "$2b$" + stored[4:]
    return _Bcrypt(stored.encode("ascii"))


# --- PBKDF2 ----------------------------------------------------------------------------------

_PBKDF2_DIGESTS = {"sha1": "sha1", "sha256": "sha256", "sha512": "sha512"}


@dataclass(frozen=True)
class _Pbkdf2:
    """A PBKDF2-HMAC derived key with what it was derived with."""

    digest: str
    iterations: int
    salt: bytes
    expected: bytes

    def matches(self, password: str) -> bool:
        computed = hashlib.pbkdf2_hmac(
            self.digest, password.encode(), self.salt, self.iterations, dklen=len(self.expected)
        )
        return hmac.compare_digest(computed, self.expected)


def _pbkdf2(
    digest: str | None, iterations: int | None, salt: bytes | None, expected: bytes | None
) -> _Pbkdf2 | None:
    if digest is None or iterations is None or not salt or expected is None:
        return None
    if len(expected) < MIN_PBKDF2_KEY_BYTES:
        return None
    return _Pbkdf2(digest, iterations, salt, expected)


def _parse_iterations(text: str) -> int | None:
    # isdigit() alone admits other scripts' digits (and ², which int() refuses).
    if not (text.isascii() and text.isdigit()):
        return None
    iterations = int(text)
    return iterations if 1 <= iterations <= MAX_PBKDF2_ITERATIONS else None


def _parse_passlib_parts(digest: str | None, rest: str) -> _Pbkdf2 | None:
    """``<iterations>$<ab64 salt>$<ab64 hash>``, shared by the modular and LDAP spellings."""
    parts = rest.split("$")
    if len(parts) != 3:
        return None
    return _pbkdf2(
        digest,
        _parse_iterations(parts[0]),
        _b64decode(parts[1], padded=False, adapted=True),
        _b64decode(parts[2], padded=False, adapted=True),
    )


def _parse_passlib_pbkdf2(stored: str) -> _Pbkdf2 | None:
    """passlib modular: ``$pbkdf2-sha256$…`` (``$pbkdf2$`` is SHA-1)."""
    match = re.fullmatch(r"\$pbkdf2(?:-(sha\d+))?\$(.*)", stored, re.DOTALL)
    if match is None:
        return None
    return _parse_passlib_parts(_PBKDF2_DIGESTS.get(match.group(1) or "sha1"), match.group(2))


def _parse_ldap_pbkdf2(scheme: str, payload: str) -> _Pbkdf2 | None:
    """passlib's LDAP spelling: ``{PBKDF2-SHA256}…`` (``{PBKDF2}`` is SHA-1)."""
    match = re.fullmatch(r"PBKDF2(?:-(SHA\d+))?", scheme)
    if match is None:
        return None
    return _parse_passlib_parts(_PBKDF2_DIGESTS.get((match.group(1) or "SHA1").lower()), payload)


def _parse_django_pbkdf2(stored: str) -> _Pbkdf2 | None:
    """Django: ``pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`` (salt used as text)."""
    parts = stored.split("$")
    if len(parts) != 4:
        return None
    return _pbkdf2(
        _PBKDF2_DIGESTS.get(parts[0].removeprefix("pbkdf2_")),
        _parse_iterations(parts[1]),
        parts[2].encode(),
        _b64decode(parts[3]),
    )
