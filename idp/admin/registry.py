"""应用接入 (/admin/clients): the registry of OIDC clients and CAS services, for admins only.

Thin views: parse the form, call :mod:`idp.admin.registry_operations`, commit, render. A new
or rotated secret is rendered once in the response (never flashed, stored or redirected).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from idp.admin.access import add_console_section, console_required
from idp.admin.admin_forms import CasServiceForm, OidcClientForm, ReasonForm
from idp.admin.form_tokens import (
    finish_form_token,
    issue_form_token,
    release_form_token,
    use_form_token,
)
from idp.admin.registry_operations import (
    CasSettings,
    OidcSettings,
    RegistryError,
    create_cas_service,
    create_oidc_client,
    rotate_secret,
    set_enabled,
    split_lines,
    update_cas_service,
    update_oidc_client,
)
from idp.admin.snippets import cas_snippets, oidc_snippets
from idp.clients.models import CasService, OidcClient
from idp.directory.models import User
from idp.directory.roles import Role
from idp.extensions import db
from idp.oidc.keys import client_algorithm

bp = Blueprint("admin_registry", __name__, url_prefix="/admin/clients", template_folder="templates")

add_console_section(_l("应用接入"), "admin_registry.index", Role.ADMIN)


def _no_store(body: str, status: int = 200) -> Any:
    """A page that must not be cached (it may carry a secret shown once)."""
    response = current_app.make_response((body, status))
    response.headers["Cache-Control"] = "no-store"
    return response


def _show_problems(form: Any, problems: dict[str, str]) -> None:
    """Put each refusal under its field (or on top when the form has no such field)."""
    for name, message in problems.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*field.errors, message]
        else:
            flash(message, "error")


def _oidc_settings(form: OidcClientForm, public: bool) -> OidcSettings:
    # A public client has no secret to present: its method is none, whatever was posted. A form
    # without the choice (a page older than it) leaves the method as it is.
    chosen = None if public else form.token_endpoint_auth_method
    method = chosen.data if chosen is not None and chosen.raw_data else None
    return OidcSettings(
        name=form.name.data or "",
        redirect_uris=split_lines(form.redirect_uris.data),
        post_logout_uris=split_lines(form.post_logout_uris.data),
        backchannel_logout_uri=(form.backchannel_logout_uri.data or "").strip() or None,
        scopes=split_lines(form.scopes.data),
        allowed_kinds=list(form.allowed_kinds.data or []),
        allowed_departments=split_lines(form.allowed_departments.data),
        first_party=bool(form.first_party.data),
        id_token_alg=form.id_token_alg.data or "",
        token_endpoint_auth_method=method,
    )


def _cas_settings(form: CasServiceForm) -> CasSettings:
    return CasSettings(
        name=form.name.data or "",
        service_pattern=(form.service_pattern.data or "").strip(),
        attributes=list(form.attributes.data or []),
        proxy_allowed=bool(form.proxy_allowed.data),
        single_logout=bool(form.single_logout.data),
        allowed_kinds=list(form.allowed_kinds.data or []),
        allowed_departments=split_lines(form.allowed_departments.data),
    )


def _find_oidc(client_id: str) -> OidcClient:
    client = db.session.scalar(db.select(OidcClient).where(OidcClient.client_id == client_id))
    if client is None:
        abort(404)
    return client


def _find_cas(service_id: int) -> CasService:
    service = db.session.get(CasService, service_id)
    if service is None:
        abort(404)
    return service


@bp.get("")
@console_required(Role.ADMIN)
def index(user: User) -> ResponseReturnValue:
    """Every registered client and service."""
    clients = db.session.scalars(db.select(OidcClient).order_by(OidcClient.id)).all()
    services = db.session.scalars(db.select(CasService).order_by(CasService.id)).all()
    return render_template("admin/clients.html", clients=clients, services=services)


# --- OpenID Connect -----------------------------------------------------------------------------


#: What the single-use tokens of 登记 and 重置密钥 are for (:mod:`idp.admin.form_tokens`).
NEW_OIDC = "oidc.create"


def _rotation(client: OidcClient) -> str:
    return f"oidc.rotate:{client.client_id}"


@bp.route("/oidc/new", methods=["GET", "POST"])
@console_required(Role.ADMIN)
def new_oidc(user: User) -> ResponseReturnValue:
    """Register an OpenID Connect client; its secret is shown once."""
    form = OidcClientForm()
    if not form.is_submitted():
        form.scopes.data = "openid profile email phone campus"
    token = form.once.data or ""
    use = use_form_token(token, user, NEW_OIDC) if form.validate_on_submit() else None
    if form.is_submitted() and not form.errors and use is None:
        form.name.errors = [_("页面已过期，请检查后重新提交。")]
    elif use is not None and not use.first:
        # The page with the secret was reloaded, or 登记 pressed twice: nothing more is made.
        flash(_("该客户端已登记，重复的提交没有再登记一个。密钥只显示一次；如未保存，请重置密钥。"))
        if use.done:
            return redirect(url_for(".edit_oidc", client_id=use.done))
        return redirect(url_for(".index"))
    elif use is not None:
        try:
            client, secret = create_oidc_client(
                _oidc_settings(form, public=bool(form.public.data)),
                actor=user,
                client_id=form.client_id.data,
                public=bool(form.public.data),
                grant_types=list(form.grant_types.data or []),
                reason=form.reason.data or "",
            )
        except RegistryError as exc:
            db.session.rollback()
            release_form_token(token)
            _show_problems(form, exc.problems)
        else:
            db.session.commit()
            finish_form_token(token, client.client_id)
            return _no_store(
                render_template(
                    "admin/client_secret.html",
                    client=client,
                    secret=secret,
                    created=True,
                    snippets=oidc_snippets(current_app.config["ISSUER"], client),
                )
            )
    status = 400 if form.is_submitted() else 200
    form.once.data = issue_form_token(user, NEW_OIDC)
    return render_template("admin/oidc_form.html", form=form, client=None), status


@bp.route("/oidc/<client_id>", methods=["GET", "POST"])
@console_required(Role.ADMIN)
def edit_oidc(user: User, client_id: str) -> ResponseReturnValue:
    """A client's registration, its integration snippets, and the form to change it."""
    client = _find_oidc(client_id)
    form = OidcClientForm()
    if client.public:
        del form.token_endpoint_auth_method  # always none: nothing to choose
    if not form.is_submitted():
        form.name.data = client.name
        form.redirect_uris.data = "\n".join(client.redirect_uris or [])
        form.post_logout_uris.data = "\n".join(client.post_logout_redirect_uris or [])
        form.backchannel_logout_uri.data = client.backchannel_logout_uri or ""
        form.scopes.data = " ".join(client.scopes or [])
        form.allowed_kinds.data = list(client.allowed_kinds or [])
        form.allowed_departments.data = " ".join(client.allowed_departments or [])
        form.first_party.data = client.first_party
        form.id_token_alg.data = client_algorithm(client)
        if not client.public:
            form.token_endpoint_auth_method.data = client.token_endpoint_auth_method
    elif form.validate_on_submit():
        try:
            changed = update_oidc_client(
                client,
                _oidc_settings(form, public=client.public),
                actor=user,
                reason=form.reason.data or "",
            )
        except RegistryError as exc:
            db.session.rollback()
            _show_problems(form, exc.problems)
        else:
            db.session.commit()
            flash(_("已保存。") if changed else _("没有修改。"), "success")
            return redirect(url_for(".edit_oidc", client_id=client.client_id))
    status = 400 if form.is_submitted() else 200
    return render_template(
        "admin/oidc_form.html",
        form=form,
        client=client,
        action_form=ReasonForm(formdata=None),
        rotate_form=ReasonForm(formdata=None, once=issue_form_token(user, _rotation(client))),
        snippets=oidc_snippets(current_app.config["ISSUER"], client),
    ), status


@bp.post("/oidc/<client_id>/rotate-secret")
@console_required(Role.ADMIN)
def rotate_oidc_secret(user: User, client_id: str) -> ResponseReturnValue:
    """A new secret for a confidential client; the old one stops working at once."""
    client = _find_oidc(client_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        flash(_("原因过长。"), "error")
        return redirect(url_for(".edit_oidc", client_id=client_id))
    token = form.once.data or ""
    use = use_form_token(token, user, _rotation(client))
    if use is None:
        flash(_("页面已过期，请重新操作。"), "error")
        return redirect(url_for(".edit_oidc", client_id=client_id))
    if not use.first:
        # Reloaded, or pressed twice: the secret just shown stays the good one.
        flash(_("密钥已重置，重复的提交没有再重置一次。新密钥只显示一次；如未保存，请再次重置。"))
        return redirect(url_for(".edit_oidc", client_id=client_id))
    try:
        secret = rotate_secret(client, actor=user, reason=form.reason.data or "")
    except RegistryError as exc:
        db.session.rollback()
        release_form_token(token)
        flash("；".join(exc.problems.values()), "error")
        return redirect(url_for(".edit_oidc", client_id=client_id))
    db.session.commit()
    finish_form_token(token, client.client_id)
    return _no_store(
        render_template(
            "admin/client_secret.html",
            client=client,
            secret=secret,
            created=False,
            snippets=oidc_snippets(current_app.config["ISSUER"], client),
        )
    )


def _toggle(user: User, registration: OidcClient | CasService, enabled: bool) -> bool:
    form = ReasonForm()
    if not form.validate_on_submit():
        flash(_("原因过长。"), "error")
        return False
    if set_enabled(registration, enabled, actor=user, reason=form.reason.data or ""):
        db.session.commit()
        flash(_("已启用。") if enabled else _("已停用，该应用将无法再登录。"), "success")
    return True


@bp.post("/oidc/<client_id>/enable")
@console_required(Role.ADMIN)
def enable_oidc(user: User, client_id: str) -> ResponseReturnValue:
    """Let the client sign people in again."""
    _toggle(user, _find_oidc(client_id), True)
    return redirect(url_for(".edit_oidc", client_id=client_id))


@bp.post("/oidc/<client_id>/disable")
@console_required(Role.ADMIN)
def disable_oidc(user: User, client_id: str) -> ResponseReturnValue:
    """Stop the client from signing anyone in (its registration stays)."""
    _toggle(user, _find_oidc(client_id), False)
    return redirect(url_for(".edit_oidc", client_id=client_id))


# --- CAS ----------------------------------------------------------------------------------------


@bp.route("/cas/new", methods=["GET", "POST"])
@console_required(Role.ADMIN)
def new_cas(user: User) -> ResponseReturnValue:
    """Register a CAS service."""
    form = CasServiceForm()
    if form.validate_on_submit():
        try:
            service = create_cas_service(
                _cas_settings(form), actor=user, reason=form.reason.data or ""
            )
        except RegistryError as exc:
            db.session.rollback()
            _show_problems(form, exc.problems)
        else:
            db.session.commit()
            flash(_("CAS 服务已登记。"), "success")
            return redirect(url_for(".edit_cas", service_id=service.id))
    status = 400 if form.is_submitted() else 200
    return render_template("admin/cas_form.html", form=form, service=None), status


@bp.route("/cas/<int:service_id>", methods=["GET", "POST"])
@console_required(Role.ADMIN)
def edit_cas(user: User, service_id: int) -> ResponseReturnValue:
    """A CAS service's registration, its integration snippets, and the form to change it."""
    service = _find_cas(service_id)
    form = CasServiceForm()
    if not form.is_submitted():
        form.name.data = service.name
        form.service_pattern.data = service.service_pattern
        form.attributes.data = list(service.attributes or [])
        form.proxy_allowed.data = service.proxy_allowed
        form.single_logout.data = service.single_logout
        form.allowed_kinds.data = list(service.allowed_kinds or [])
        form.allowed_departments.data = " ".join(service.allowed_departments or [])
    elif form.validate_on_submit():
        try:
            changed = update_cas_service(
                service, _cas_settings(form), actor=user, reason=form.reason.data or ""
            )
        except RegistryError as exc:
            db.session.rollback()
            _show_problems(form, exc.problems)
        else:
            db.session.commit()
            flash(_("已保存。") if changed else _("没有修改。"), "success")
            return redirect(url_for(".edit_cas", service_id=service.id))
    status = 400 if form.is_submitted() else 200
    return render_template(
        "admin/cas_form.html",
        form=form,
        service=service,
        action_form=ReasonForm(formdata=None),
        snippets=cas_snippets(current_app.config["ISSUER"], service),
    ), status


@bp.post("/cas/<int:service_id>/enable")
@console_required(Role.ADMIN)
def enable_cas(user: User, service_id: int) -> ResponseReturnValue:
    """Accept tickets for the service again."""
    _toggle(user, _find_cas(service_id), True)
    return redirect(url_for(".edit_cas", service_id=service_id))


@bp.post("/cas/<int:service_id>/disable")
@console_required(Role.ADMIN)
def disable_cas(user: User, service_id: int) -> ResponseReturnValue:
    """Refuse the service at /cas/login and validation (its registration stays)."""
    _toggle(user, _find_cas(service_id), False)
    return redirect(url_for(".edit_cas", service_id=service_id))
