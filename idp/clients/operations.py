"""Registering clients and applying their access policies."""

from __future__ import annotations

import copy
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, make_transient_to_detached

from idp.clients.models import AccessPolicyMixin, CasService, OidcClient
from idp.clients.rules import (
    ClientError,
    ServiceMatcher,
    check_name,
    check_scopes,
    check_service_pattern,
    check_uri,
    pattern_matches,
    service_matcher,
)
from idp.directory.models import Department, User, UserKind
from idp.extensions import db

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
DEFAULT_SCOPES = ("openid", "profile", "email", "phone", "campus")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
#: ``id_token_signed_response_alg`` values (OIDC Dynamic Registration §2); the first, RS256, is
#: the default every relying party understands (OIDC Core §15.1).
ID_TOKEN_ALGS = ("RS256", "ES256")
#: ``departmentName`` is ``department_name`` under a name without an underscore: Apache httpd
#: 2.4 drops request headers with one from the CGI and PHP environment, so behind mod_auth_cas
#: (``CAS-department_name``) an application would never see it.
CAS_ATTRIBUTES = (
    "name",
    "account",
    "kind",
    "department",
    "department_name",
    "departmentName",
    "email",
    "phone",
)


def new_secret() -> str:
    """A client secret: 256 random bits, URL-safe characters."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """What is stored of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(client: OidcClient, secret: str | None) -> bool:
    """Constant-time check of a presented secret."""
    if not client.client_secret_hash or not secret:
        return False
    return hmac.compare_digest(hash_secret(secret), client.client_secret_hash)


def check_attributes(attributes: list[str] | None) -> list[str]:
    """CAS attributes to release: each one of :data:`CAS_ATTRIBUTES`."""
    unknown = sorted(set(attributes or []) - set(CAS_ATTRIBUTES))
    if unknown:
        raise ClientError(
            f"unknown attribute(s) {', '.join(unknown)}; choose from {', '.join(CAS_ATTRIBUTES)}"
        )
    return list(attributes or [])


def stored_id_token_alg(alg: str | None) -> str | None:
    """What ``id_token_signed_response_alg`` keeps: None for the default, so RS256 has one form."""
    return None if alg in (None, ID_TOKEN_ALGS[0]) else alg


def _unique(values: list[str]) -> list[str]:
    """``values`` without repeats, in their order."""
    return list(dict.fromkeys(values))


def register_oidc_client(
    name: str,
    redirect_uris: list[str],
    *,
    post_logout_uris: list[str] | None = None,
    backchannel_logout_uri: str | None = None,
    public: bool = False,
    first_party: bool = False,
    require_pkce: bool = True,
    grant_types: list[str] | None = None,
    scopes: list[str] | None = None,
    auth_method: str | None = None,
    id_token_alg: str | None = None,
) -> tuple[OidcClient, str | None]:
    """Register a relying party; returns it and its secret (shown once; None if public).

    ``id_token_alg`` None means RS256. Whether a key of that algorithm exists is for the caller
    to check (:func:`idp.oidc.keys.signing_algorithms`): the registry knows nothing of keys.
    """
    grants = grant_types or (["authorization_code", "refresh_token"] if redirect_uris else [])
    if not grants:
        raise ClientError("give at least one --redirect-uri, or --grant-type client_credentials")
    for grant in grants:
        if grant not in GRANT_TYPES:
            raise ClientError(f"unknown grant type {grant}; use one of {', '.join(GRANT_TYPES)}")
    if "authorization_code" in grants and not redirect_uris:
        raise ClientError("the authorization code grant needs at least one --redirect-uri")
    if public and "client_credentials" in grants:
        raise ClientError("a public client cannot use client_credentials")
    if id_token_alg is not None and id_token_alg not in ID_TOKEN_ALGS:
        raise ClientError(
            f"unknown ID token algorithm {id_token_alg}; use one of {', '.join(ID_TOKEN_ALGS)}"
        )
    method = auth_method or ("none" if public else "client_secret_basic")
    if method not in AUTH_METHODS or (method == "none") != public:
        raise ClientError("public clients use 'none'; confidential ones a client_secret method")
    secret = None if public else new_secret()
    client = OidcClient(
        client_id=secrets.token_hex(12),
        client_secret_hash=hash_secret(secret) if secret else None,
        name=check_name(name) or "client",
        redirect_uris=[check_uri(u, "redirect URI") for u in _unique(redirect_uris)],
        post_logout_redirect_uris=[
            check_uri(u, "post-logout URI") for u in _unique(post_logout_uris or [])
        ],
        backchannel_logout_uri=check_uri(backchannel_logout_uri, "back-channel logout URI")
        if backchannel_logout_uri
        else None,
        grant_types=_unique(grants),
        scopes=check_scopes(_unique(scopes or list(DEFAULT_SCOPES)), grants),
        token_endpoint_auth_method=method,
        public=public,
        first_party=first_party,
        # Public clients always need PKCE; the switch only exists for legacy confidential ones.
        require_pkce=True if public else require_pkce,
        id_token_signed_response_alg=stored_id_token_alg(id_token_alg),
    )
    db.session.add(client)
    db.session.flush()
    return client, secret


def register_cas_service(
    name: str,
    service_pattern: str,
    *,
    attributes: list[str] | None = None,
    proxy_allowed: bool = False,
    single_logout: bool = True,
) -> CasService:
    """Register a CAS service; its pattern must compile and is matched against whole URLs."""
    check_service_pattern(service_pattern)
    service = CasService(
        name=check_name(name) or "service",
        service_pattern=service_pattern,
        attributes=check_attributes(attributes),
        proxy_allowed=proxy_allowed,
        single_logout=single_logout,
    )
    db.session.add(service)
    db.session.flush()
    return service


#: Seconds a process may keep using its copy of the CAS service registry. A change committed
#: through this process (ORM or ``update()``/``delete()`` statements) is seen at once; one made
#: by another process (or by hand in SQL) is seen within this many seconds.
CAS_SERVICE_CACHE_TTL = 5.0
_CACHE_EXTENSION = "idp.cas_service_cache"
#: ``Session.info`` flag: this transaction changed the registry (read it afresh until it ends).
_CHANGED = "idp.cas_services_changed"
_clock = time.monotonic


@dataclass(frozen=True)
class _Entry:
    pattern: ServiceMatcher
    values: dict[str, Any]


class _ServiceCache:
    """The enabled services of one app with their compiled patterns, first registered first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation = 0
        self.entries: tuple[_Entry, ...] | None = None
        self.loaded_at = 0.0

    def invalidate(self) -> None:
        with self.lock:
            self.generation += 1
            self.entries = None


def _service_cache() -> _ServiceCache:
    cache = current_app.extensions.get(_CACHE_EXTENSION)
    if cache is None:
        cache = current_app.extensions.setdefault(_CACHE_EXTENSION, _ServiceCache())
    return cast(_ServiceCache, cache)


def _enabled_services() -> tuple[_Entry, ...]:
    table = CasService.__table__
    rows = db.session.execute(
        db.select(table).where(table.c.enabled.is_(True)).order_by(table.c.id)
    ).mappings()
    entries = []
    for row in rows:
        matcher = service_matcher(row["service_pattern"])
        if matcher is not None:  # one that does not compile matches nothing
            entries.append(_Entry(matcher, dict(row)))
    return tuple(entries)


def _registry_changing(session: Session) -> bool:
    if session.info.get(_CHANGED):
        return True
    pending = (*session.new, *session.dirty, *session.deleted)
    return any(isinstance(obj, CasService) for obj in pending)


def find_cas_service(url: str | None) -> CasService | None:
    """The enabled service whose pattern matches the whole of ``url`` (first registered wins).

    The registry is read from a per-process copy at most :data:`CAS_SERVICE_CACHE_TTL` seconds
    old, dropped whenever this process commits or rolls back a change to it; a transaction
    that is itself changing the registry reads the table.
    """
    if not url:
        return None
    session = db.session()
    if _registry_changing(session):
        services = session.scalars(
            db.select(CasService).where(CasService.enabled.is_(True)).order_by(CasService.id)
        )
        for service in services:
            if pattern_matches(service.service_pattern, url):
                return service
        return None
    else:
        cache = _service_cache()
        with cache.lock:
            cached, generation = cache.entries, cache.generation
            fresh = cached is not None and _clock() - cache.loaded_at < CAS_SERVICE_CACHE_TTL
        if cached is not None and fresh:
            entries = cached
        else:
            started = _clock()
            entries = _enabled_services()
            with cache.lock:
                if cache.generation == generation:  # nothing changed while it was read
                    cache.entries, cache.loaded_at = entries, started
    for entry in entries:
        if entry.pattern.fullmatch(url):
            return _attached(session, entry)
    return None


def _attached(session: Session, entry: _Entry) -> CasService:
    """The service as a persistent object of ``session``, without a query."""
    key = session.identity_key(CasService, entry.values["id"])
    present = session.identity_map.get(key)
    if present is not None:
        return cast(CasService, present)
    # A fresh copy (lists included) so nothing a request does reaches the cache; added as a
    # detached object, which is cheaper than merge() and equally query-free.
    values = {
        name: copy.deepcopy(value) if isinstance(value, list | dict) else value
        for name, value in entry.values.items()
    }
    service = CasService(**values)
    make_transient_to_detached(service)
    session.add(service)
    return service


def _mark_changed(session: Session) -> None:
    session.info[_CHANGED] = True


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, context: Any, instances: Any) -> None:
    if _registry_changing(session):
        _mark_changed(session)


@event.listens_for(Session, "do_orm_execute")
def _bulk_change(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete or state.is_insert) and any(
        mapper.class_ is CasService for mapper in state.all_mappers
    ):
        _mark_changed(state.session)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _transaction_ended(session: Session) -> None:
    if session.info.pop(_CHANGED, False) and has_app_context():
        _service_cache().invalidate()


def _department_codes(department: Department | None) -> set[str]:
    codes: set[str] = set()
    while department is not None:
        codes.add(department.code)
        department = department.parent
    return codes


def policy_admits(client: AccessPolicyMixin, user: User) -> bool:
    """True when ``user`` may sign in to ``client`` (kind and department rules)."""
    if not client.enabled:
        return False
    kind = user.kind.value if isinstance(user.kind, UserKind) else str(user.kind)
    if client.allowed_kinds and kind not in client.allowed_kinds:
        return False
    if client.allowed_departments:
        return bool(_department_codes(user.department) & set(client.allowed_departments))
    return True
