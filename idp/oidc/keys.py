"""Signing keys: created on first use, rotated by ``flask --app idp keys rotate``, published.

Each algorithm has its own signing key: the newest of its live keys (not retired, or retiring
later) that has been in the JWKS for ``OIDC_KEY_PREPUBLISH`` seconds, else the oldest live
one. Rotating publishes the new key at once and lets the old one go on signing for that long:
a relying party that cached the JWKS (for an hour, say: mod_auth_openidc's default) and does
not fetch it again on an unknown ``kid`` still knows the key of every token it is handed.
``keys rotate --now`` switches at once (a key that leaked must stop signing now). A client's
ID tokens and logout tokens are signed with the key of the algorithm it registered
(``id_token_signed_response_alg``), RS256 unless it asked for ES256 (OIDC Core §3.1.3.7; every
OP must offer RS256, §15.1). An RS256 key always exists: it is made on first use. Rotating
creates a new key of one algorithm and retires only that algorithm's older keys; a retired key
stays in the JWKS until every token it signed has expired (the longest token lifetime after
its retirement), so relying parties still verify those tokens, and then leaves the JWKS. Its
row stays: the provider still recognises what it signed, such as an ``id_token_hint`` a
relying party kept since sign-in. Private keys are stored encrypted with the data key, like
national ID numbers.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from flask import current_app
from joserfc.jwk import ECKey, KeySet, RSAKey

from idp.clients.models import OidcClient
from idp.clients.operations import ID_TOKEN_ALGS
from idp.directory.identifiers import data_key, decrypt_identifier, encrypt_identifier
from idp.directory.models import aware, utcnow
from idp.extensions import db
from idp.oidc.claims import timestamp
from idp.oidc.models import SigningKey

log = logging.getLogger(__name__)

#: Keys are made for exactly the algorithms a client may register for its ID tokens.
ALGORITHMS = ID_TOKEN_ALGS
DEFAULT_ALGORITHM = ALGORITHMS[0]
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


def prepublish() -> timedelta:
    """How long a rotated-in key is in the JWKS before it signs."""
    return timedelta(seconds=current_app.config["OIDC_KEY_PREPUBLISH"])


def active_keys(alg: str | None = None) -> list[SigningKey]:
    """Keys with no retirement set (of ``alg`` only, if given), newest first: the newest key of
    each algorithm, and any rotated in after it not yet signing."""
    query = db.select(SigningKey).where(SigningKey.retired_at.is_(None))
    if alg is not None:
        query = query.where(SigningKey.alg == alg)
    query = query.order_by(SigningKey.created_at.desc(), SigningKey.id.desc())
    return list(db.session.scalars(query))


def live_keys(alg: str) -> list[SigningKey]:
    """Keys of ``alg`` that may sign now: not retired, or retiring later; newest first."""
    now = utcnow()
    query = (
        db.select(SigningKey)
        .where(SigningKey.alg == alg)
        .where(SigningKey.retired_at.is_(None) | (SigningKey.retired_at > now))
        .order_by(SigningKey.created_at.desc(), SigningKey.id.desc())
    )
    return list(db.session.scalars(query))


def rotate_keys(
    alg: str = DEFAULT_ALGORITHM, *, now: bool = False
) -> tuple[SigningKey, list[SigningKey]]:
    """Publish a new key of ``alg``; returns it and the keys of ``alg`` it retires.

    The keys it retires go on signing until the new one has been published for
    ``OIDC_KEY_PREPUBLISH`` (at once with ``now``), then stay in the JWKS until what they signed
    has expired. Keys of the other algorithm keep signing for the clients that registered it
    (caller commits).
    """
    moment = utcnow()
    until = moment if now else moment + prepublish()
    retiring = [
        key
        for key in live_keys(alg)
        if key.retired_at is None or aware(key.retired_at) > until  # sooner ends stay sooner
    ]
    new = create_key(alg)
    for key in retiring:
        key.retired_at = until
        key.expires_at = until + retirement_grace()
    return new, retiring


def signs_from(key: SigningKey) -> datetime:
    """When a key (not yet retired) signs at the latest: once published for long enough."""
    return aware(key.created_at) + prepublish()


def signing_algorithms() -> list[str]:
    """The algorithms that have a signing key now, RS256 first (what discovery announces)."""
    active = db.select(SigningKey.alg).where(SigningKey.retired_at.is_(None)).distinct()
    present = set(db.session.scalars(active))
    return [alg for alg in ALGORITHMS if alg == DEFAULT_ALGORITHM or alg in present]


def client_algorithm(client: OidcClient) -> str:
    """The algorithm ``client`` registered for its ID tokens: RS256 unless it chose another."""
    return client.id_token_signed_response_alg or DEFAULT_ALGORITHM


def current_key(alg: str = DEFAULT_ALGORITHM) -> SigningKey:
    """The signing key of ``alg``, created (and flushed, not committed) if there is none yet.

    RS256's first key is made this way on first use. An ES256 key is missing only if a client
    was registered for ES256 around the checks of the CLI and the console: signing with RS256
    instead would break the registration (the relying party expects ES256 and refuses the
    token), so the key is made, loudly, and the provider keeps its word.
    """
    keys = live_keys(alg)
    if keys:
        ready = utcnow() - prepublish()
        # A key rotated in signs once relying parties have had time to fetch the JWKS; until
        # then the key it replaces does. With none ready (the first key of ``alg``, two
        # rotations in a row) the oldest live key signs: it has been published longest.
        return next((key for key in keys if aware(key.created_at) <= ready), keys[-1])
    if alg != DEFAULT_ALGORITHM:
        log.warning("no %s signing key: creating one (run `keys rotate --alg %s` first)", alg, alg)
    return create_key(alg)


#: ``app.extensions`` flag: this app has seen a signing key in its database.
_KEY_SEEN = "idp.oidc_signing_key_seen"


def ensure_signing_key() -> None:
    """Create the first key on first use, committed on its own so that it is never lost.

    The RS256 key, that is: every client that registered no algorithm uses it. Once a process
    has seen one it stops asking: keys are never deleted and rotating RS256 always leaves a
    newer RS256 key (rotating ES256 leaves RS256 alone), so there is nothing more to create.
    (Which key signs is still read at each signature: :func:`current_key`.)
    """
    if current_app.extensions.get(_KEY_SEEN):
        return
    if not active_keys(DEFAULT_ALGORITHM):
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


def signing_keyset(alg: str = DEFAULT_ALGORITHM) -> KeySet:
    """A set holding only the signing key of ``alg``, so that every token names its ``kid``."""
    return KeySet([private_key(current_key(alg))])
