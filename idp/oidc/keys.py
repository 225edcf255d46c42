"""Signing keys: created on first use, rotated by ``flask --app idp keys rotate``, published.

The newest key that is not retired signs ID tokens and logout tokens. Rotating creates a new
key and retires the others; a retired key stays in the JWKS until every token it signed has
expired (the longest token lifetime after its retirement), so relying parties still verify
those tokens, and then leaves the JWKS. Its row stays: the provider still recognises what it
signed, such as an ``id_token_hint`` a relying party kept since sign-in. Private keys are
stored encrypted with the data key, like national ID numbers.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Any

from flask import current_app
from joserfc.jwk import ECKey, KeySet, RSAKey

from idp.directory.identifiers import data_key, decrypt_identifier, encrypt_identifier
from idp.directory.models import utcnow
from idp.extensions import db
from idp.oidc.claims import timestamp
from idp.oidc.models import SigningKey

ALGORITHMS = ("RS256", "ES256")
DEFAULT_ALGORITHM = "RS256"
#: NIST and the CA/B Forum accept 2048-bit RSA until 2030; it keeps signing fast.
RSA_BITS = 2048

Key = RSAKey | ECKey


def _new_private_key(alg: str) -> Key:
    if alg == "RS256":
        return RSAKey.generate_key(RSA_BITS, private=True)
    if alg == "ES256":
        return ECKey.generate_key("P-256", private=True)
    raise ValueError(f"unsupported algorithm {alg}; use one of {', '.join(ALGORITHMS)}")


def create_key(alg: str = DEFAULT_ALGORITHM) -> SigningKey:
    """Generate a key and add it to the session (the caller commits)."""
    private = _new_private_key(alg)
    kid = private.thumbprint()
    public = {**private.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}
    pem = private.as_pem(private=True).decode("ascii")
    key = SigningKey(
        kid=kid,
        alg=alg,
        private_key_encrypted=encrypt_identifier(pem, data_key(current_app)),
        public_jwk=public,
        created_at=utcnow(),
    )
    db.session.add(key)
    db.session.flush()
    return key


def retirement_grace() -> timedelta:
    """How long a retired key stays published: the longest lifetime of what it signed."""
    config = current_app.config
    return timedelta(seconds=max(config["OIDC_ID_TOKEN_TTL"], config["OIDC_ACCESS_TOKEN_TTL"]))


def active_keys() -> list[SigningKey]:
    """Keys not yet retired, newest first."""
    query = (
        db.select(SigningKey)
        .where(SigningKey.retired_at.is_(None))
        .order_by(SigningKey.created_at.desc(), SigningKey.id.desc())
    )
    return list(db.session.scalars(query))


def rotate_keys(alg: str = DEFAULT_ALGORITHM) -> tuple[SigningKey, list[SigningKey]]:
    """Make a new key the signing key; returns it and the keys it retired (caller commits)."""
    retiring = active_keys()
    new = create_key(alg)
    now = utcnow()
    for key in retiring:
        key.retired_at = now
        key.expires_at = now + retirement_grace()
    return new, retiring


def current_key() -> SigningKey:
    """The signing key, created (and flushed, not committed) if there is none yet."""
    keys = active_keys()
    return keys[0] if keys else create_key()


#: ``app.extensions`` flag: this app has seen a signing key in its database.
_KEY_SEEN = "idp.oidc_signing_key_seen"


def ensure_signing_key() -> None:
    """Create the first key on first use, committed on its own so that it is never lost.

    Once a process has seen a key it stops asking: keys are never deleted and rotation always
    leaves a newer active key, so there is nothing more to create. (Which key signs is still
    read at each signature: :func:`current_key`, which would also create one if needed.)
    """
    if current_app.extensions.get(_KEY_SEEN):
        return
    if not active_keys():
        create_key()
        db.session.commit()
    current_app.extensions[_KEY_SEEN] = True


def published_keys() -> list[SigningKey]:
    """Keys in the JWKS: active ones, and retired ones whose tokens may still be in use."""
    now = timestamp(utcnow())
    rows = db.session.scalars(db.select(SigningKey).order_by(SigningKey.created_at.desc()))
    return [k for k in rows if k.expires_at is None or timestamp(k.expires_at) > now]


def jwks() -> dict[str, Any]:
    """The public JSON Web Key Set."""
    return {"keys": [dict(k.public_jwk) for k in published_keys()]}


def verification_keyset() -> KeySet:
    """Every key this provider has signed with, retired and unpublished ones included.

    For its own tokens coming back (``id_token_hint``): an ID token kept since a sign-in that
    outlived the key's time in the JWKS (a remembered session lasts weeks) is still ours.
    """
    rows = db.session.scalars(db.select(SigningKey).order_by(SigningKey.created_at.desc()))
    document = {"keys": [dict(k.public_jwk) for k in rows]}
    return KeySet.import_key_set(document)  # type: ignore[arg-type]


@lru_cache(maxsize=16)
def _load_private(encrypted: str, kid: str, alg: str, key: bytes) -> Key:
    # Cached: parsing a PEM costs more than signing, and keys never change once written.
    pem = decrypt_identifier(encrypted, key)
    parameters = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        return ECKey.import_key(pem, parameters)  # type: ignore[arg-type]
    return RSAKey.import_key(pem, parameters)  # type: ignore[arg-type]


def private_key(key: SigningKey) -> Key:
    """The usable private key of a stored key (its ``kid`` set)."""
    return _load_private(key.private_key_encrypted, key.kid, key.alg, data_key(current_app))


def signing_keyset() -> KeySet:
    """A set holding only the signing key, so that every token names its ``kid``."""
    return KeySet([private_key(current_key())])
