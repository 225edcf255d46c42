"""The console's client registry: register, edit, rotate the secret, disable or enable OIDC
clients and CAS services. The URL, scope, pattern and attribute rules are those of
:mod:`idp.clients.rules` and :mod:`idp.clients.operations` (the CLI's); this module only words
their refusals for people and records every change in the audit log."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from idp.audit.operations import record
from idp.clients.models import CasService, OidcClient
from idp.clients.operations import (
    AUTH_METHODS,
    CAS_ATTRIBUTES,
    GRANT_TYPES,
    ID_TOKEN_ALGS,
    check_attributes,
    hash_secret,
    new_secret,
    register_cas_service,
    register_oidc_client,
    stored_id_token_alg,
)
from idp.clients.rules import (
    ClientError,
    LoosePattern,
    ScopeError,
    UnsupportedPattern,
    check_scopes,
    check_service_pattern,
    check_uri,
)
from idp.directory.models import Department, User, UserKind, utcnow
from idp.extensions import db
from idp.oidc.keys import signing_algorithms
from idp.oidc.models import OAuthToken
from shared.i18n import translate as _

#: What a client id chosen by an admin may look like (the generated ones are 24 hex digits).
CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")
#: How a confidential client may present its secret at the token endpoint; the first,
#: client_secret_basic, is the default. A public client has no secret: its method is ``none``.
SECRET_AUTH_METHODS = tuple(method for method in AUTH_METHODS if method != "none")


class RegistryError(ValueError):
    """The form was refused; ``problems`` maps a field name to what is wrong with it."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(problems.values()))
        self.problems = problems


@dataclass
class OidcSettings:
    """What an admin edits of an OIDC client (the client id and kind are fixed at creation)."""

    name: str
    redirect_uris: list[str]
    post_logout_uris: list[str] = field(default_factory=list)
    backchannel_logout_uri: str | None = None
    scopes: list[str] = field(default_factory=list)
    allowed_kinds: list[str] = field(default_factory=list)
    allowed_departments: list[str] = field(default_factory=list)
    first_party: bool = False
    #: ``id_token_signed_response_alg``: the algorithm of its ID tokens and logout tokens.
    id_token_alg: str = ID_TOKEN_ALGS[0]
    #: How it presents its secret to the token endpoint, which refuses any other way: it must be
    #: what the relying party's library sends. None: client_secret_basic for a new confidential
    #: client, ``none`` for a public one; unchanged on an edit.
    token_endpoint_auth_method: str | None = None


@dataclass
class CasSettings:
    """What an admin edits of a CAS service."""

    name: str
    service_pattern: str
    attributes: list[str] = field(default_factory=list)
    proxy_allowed: bool = False
    single_logout: bool = True
    allowed_kinds: list[str] = field(default_factory=list)
    allowed_departments: list[str] = field(default_factory=list)


def split_lines(raw: str | None) -> list[str]:
    """One entry per line (or separated by spaces), blanks dropped, order kept, no repeats."""
    seen: list[str] = []
    for part in (raw or "").split():
        if part not in seen:
            seen.append(part)
    return seen


def _check_uris(uris: list[str], name: str, problems: dict[str, str]) -> None:
    for uri in uris:
        try:
            check_uri(uri, name)
        except ClientError:
            problems[name] = _(
                "地址无效：%(uri)s。须为完整的 https 地址（不超过 1000 个字符），不含用户名、"
                "通配符、空白或 #（本机开发可用 http://127.0.0.1 或 http://localhost）",
                uri=uri,
            )
            return


def _check_policy(kinds: list[str], departments: list[str], problems: dict[str, str]) -> None:
    known = {kind.value for kind in UserKind}
    if any(kind not in known for kind in kinds):
        problems["allowed_kinds"] = _("未知的人员类别")
    if departments:
        found = set(
            db.session.scalars(db.select(Department.code).where(Department.code.in_(departments)))
        )
        missing = [code for code in departments if code not in found]
        if missing:
            problems["allowed_departments"] = _(
                "部门代码不存在：%(codes)s", codes=_("、").join(missing)
            )


def _check_oidc(settings: OidcSettings, grants: list[str], public: bool) -> dict[str, str]:
    problems: dict[str, str] = {}
    method = settings.token_endpoint_auth_method
    if method is not None and method not in (("none",) if public else SECRET_AUTH_METHODS):
        problems["token_endpoint_auth_method"] = (
            _("公开客户端没有密钥，令牌端点认证方式只能是 none")
            if public
            else _("令牌端点认证方式须为 client_secret_basic 或 client_secret_post")
        )
    if not settings.name.strip():
        problems["name"] = _("请填写名称")
    if "authorization_code" in grants and not settings.redirect_uris:
        problems["redirect_uris"] = _("请至少填写一个重定向 URI")
    _check_uris(settings.redirect_uris, "redirect_uris", problems)
    _check_uris(settings.post_logout_uris, "post_logout_uris", problems)
    if settings.backchannel_logout_uri:
        _check_uris([settings.backchannel_logout_uri], "backchannel_logout_uri", problems)
    try:
        check_scopes(settings.scopes, grants)
    except ScopeError as exc:
        problems["scopes"] = (
            _("授权范围无效：%(scopes)s", scopes=_("、").join(exc.invalid))
            if exc.invalid
            else _("授权范围须包含 openid")
        )
    if settings.id_token_alg not in ID_TOKEN_ALGS:
        problems["id_token_alg"] = _("未知的签名算法")
    elif settings.id_token_alg not in signing_algorithms():
        problems["id_token_alg"] = _(
            "尚无 %(alg)s 签名密钥，请先运行 flask --app idp keys rotate --alg %(alg)s",
            alg=settings.id_token_alg,
        )
    _check_policy(settings.allowed_kinds, settings.allowed_departments, problems)
    return problems


def _check_cas(settings: CasSettings) -> dict[str, str]:
    problems: dict[str, str] = {}
    if not settings.name.strip():
        problems["name"] = _("请填写名称")
    if not settings.service_pattern.strip():
        problems["service_pattern"] = _("请填写服务地址规则")
    else:
        try:
            check_service_pattern(settings.service_pattern)
        except LoosePattern as exc:
            problems["service_pattern"] = _(
                "服务地址规则过宽：它也匹配另一个主机的地址 %(probe)s。请在主机名后紧跟 / 或端口，"
                "例如 ^https://app\\.example\\.edu/.*",
                probe=exc.probe,
            )
        except UnsupportedPattern:
            problems["service_pattern"] = _(
                "服务地址规则须使用 RE2 语法：不支持反向引用（如 \\1）和环视（如 (?=…)），"
                "字符串结尾请写 \\z 而非 \\Z"
            )
        except ClientError:
            problems["service_pattern"] = _("服务地址规则不是有效的正则表达式")
    try:
        check_attributes(settings.attributes)
    except ClientError:
        problems["attributes"] = _(
            "只能选择这些属性：%(names)s", names=_("、").join(CAS_ATTRIBUTES)
        )
    _check_policy(settings.allowed_kinds, settings.allowed_departments, problems)
    return problems


def _audit(
    action: str, actor: User, subject: str, protocol: str, reason: str = "", **extra: Any
) -> None:
    detail: dict[str, Any] = {"via": "console", "protocol": protocol, **extra}
    if reason:
        detail["reason"] = reason
    record(action, actor=actor, subject=subject, detail=detail)


def cas_subject(service: CasService) -> str:
    """How a CAS service is named in the audit log."""
    return f"cas:{service.id}"


def create_oidc_client(
    settings: OidcSettings,
    *,
    actor: User,
    client_id: str | None = None,
    public: bool = False,
    grant_types: list[str] | None = None,
    reason: str = "",
) -> tuple[OidcClient, str | None]:
    """Register a relying party from the console; returns it and its secret (shown once)."""
    grants = list(["authorization_code", "refresh_token"] if grant_types is None else grant_types)
    problems = _check_oidc(settings, grants, public)
    if not grants:
        problems["grant_types"] = _("请至少选择一种授权类型")
    elif any(grant not in GRANT_TYPES for grant in grants):
        problems["grant_types"] = _("未知的授权类型")
    elif public and "client_credentials" in grants:
        problems["grant_types"] = _("公开客户端不能使用 client_credentials")
    wanted_id = (client_id or "").strip()
    if wanted_id:
        if not CLIENT_ID_PATTERN.match(wanted_id):
            problems["client_id"] = _(
                "客户端 ID 须为 3–64 位字母、数字、点、下划线或连字符，且以字母或数字开头"
            )
        elif db.session.scalar(db.select(OidcClient.id).where(OidcClient.client_id == wanted_id)):
            problems["client_id"] = _("客户端 ID 已被使用：%(client_id)s", client_id=wanted_id)
    if problems:
        raise RegistryError(problems)
    try:
        client, secret = register_oidc_client(
            settings.name,
            settings.redirect_uris,
            post_logout_uris=settings.post_logout_uris,
            backchannel_logout_uri=settings.backchannel_logout_uri,
            public=public,
            first_party=settings.first_party,
            grant_types=grants,
            scopes=settings.scopes or None,
            auth_method=settings.token_endpoint_auth_method,
            id_token_alg=settings.id_token_alg,
        )
    except ClientError as exc:  # every rule was checked above; this is a rule added since
        raise RegistryError({"name": str(exc)}) from None
    if wanted_id:
        client.client_id = wanted_id
    client.allowed_kinds = settings.allowed_kinds or None
    client.allowed_departments = settings.allowed_departments or None
    db.session.flush()
    _audit("client.create", actor, client.client_id, "oidc", reason)
    return client, secret


def update_oidc_client(
    client: OidcClient, settings: OidcSettings, *, actor: User, reason: str = ""
) -> list[str]:
    """Change a relying party's registration; returns the names of the changed fields."""
    problems = _check_oidc(settings, list(client.grant_types or []), client.public)
    if problems:
        raise RegistryError(problems)
    wanted = {
        "name": settings.name.strip(),
        "redirect_uris": settings.redirect_uris,
        "post_logout_redirect_uris": settings.post_logout_uris,
        "backchannel_logout_uri": settings.backchannel_logout_uri or None,
        "scopes": settings.scopes,
        "allowed_kinds": settings.allowed_kinds or None,
        "allowed_departments": settings.allowed_departments or None,
        "first_party": settings.first_party,
        "id_token_signed_response_alg": stored_id_token_alg(settings.id_token_alg),
        "token_endpoint_auth_method": settings.token_endpoint_auth_method
        or client.token_endpoint_auth_method,
    }
    changed = _apply(client, wanted)
    if changed:
        _audit("client.update", actor, client.client_id, "oidc", reason, fields=changed)
    return changed


def create_cas_service(settings: CasSettings, *, actor: User, reason: str = "") -> CasService:
    """Register a CAS service from the console."""
    problems = _check_cas(settings)
    if problems:
        raise RegistryError(problems)
    service = register_cas_service(
        settings.name,
        settings.service_pattern,
        attributes=settings.attributes,
        proxy_allowed=settings.proxy_allowed,
        single_logout=settings.single_logout,
    )
    service.allowed_kinds = settings.allowed_kinds or None
    service.allowed_departments = settings.allowed_departments or None
    db.session.flush()
    _audit("client.create", actor, cas_subject(service), "cas", reason)
    return service


def update_cas_service(
    service: CasService, settings: CasSettings, *, actor: User, reason: str = ""
) -> list[str]:
    """Change a CAS service's registration; returns the names of the changed fields."""
    problems = _check_cas(settings)
    if problems:
        raise RegistryError(problems)
    wanted = {
        "name": settings.name.strip(),
        "service_pattern": settings.service_pattern,
        "attributes": settings.attributes,
        "proxy_allowed": settings.proxy_allowed,
        "single_logout": settings.single_logout,
        "allowed_kinds": settings.allowed_kinds or None,
        "allowed_departments": settings.allowed_departments or None,
    }
    changed = _apply(service, wanted)
    if changed:
        _audit("client.update", actor, cas_subject(service), "cas", reason, fields=changed)
    return changed


def _apply(obj: Any, wanted: dict[str, Any]) -> list[str]:
    changed = [name for name, value in wanted.items() if getattr(obj, name) != value]
    for name in changed:
        setattr(obj, name, wanted[name])
    db.session.flush()
    return changed


def rotate_secret(client: OidcClient, *, actor: User, reason: str = "") -> str:
    """Give a confidential client a new secret (the old one stops working); shown once."""
    if client.public:
        raise RegistryError({"secret": _("公开客户端没有密钥")})
    secret = new_secret()
    client.client_secret_hash = hash_secret(secret)
    # A secret is rotated because it may have leaked: what was obtained with it goes too
    # (RFC 6819 §5.1.5.4). Its users' next sign-in at the client is silent while their SSO
    # session lasts.
    revoked = db.session.execute(
        db.update(OAuthToken)
        .where(OAuthToken.client_id == client.id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    ).rowcount
    db.session.flush()
    _audit("client.secret_rotate", actor, client.client_id, "oidc", reason, tokens_revoked=revoked)
    return secret


def set_enabled(
    registration: OidcClient | CasService, enabled: bool, *, actor: User, reason: str = ""
) -> bool:
    """Enable or disable a client or service; False when it already was so."""
    if bool(registration.enabled) == enabled:
        return False
    registration.enabled = enabled
    db.session.flush()
    if isinstance(registration, OidcClient):
        subject, protocol = registration.client_id, "oidc"
    else:
        subject, protocol = cas_subject(registration), "cas"
    _audit("client.enable" if enabled else "client.disable", actor, subject, protocol, reason)
    return True
