"""``/scim/v2``: the read-only directory API (SCIM 2.0, RFC 7644) for campus systems.

Users and Groups need a client-credentials access token with scope ``directory.read`` (see
:mod:`idp.oidc.provider`); the self-description endpoints (ServiceProviderConfig, Schemas,
ResourceTypes) are public, as they hold nothing about anyone. Every refusal is audited; any
other failure is a SCIM Error too (500, or 503 with ``Retry-After`` in an outage), never a page.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from idp.audit.operations import DENIED, FAILURE, record
from idp.clients.models import OidcClient
from idp.directory import scim
from idp.directory.scim_filter import FilterError, Node, parse_filter
from idp.directory.scim_schemas import resource_types, schemas, service_provider_config
from idp.extensions import db
from idp.oidc.adapters import find_token
from shared.web import RETRY_AFTER_OUTAGE, is_outage

bp = Blueprint("scim", __name__, url_prefix="/scim/v2")

MEDIA_TYPE = "application/scim+json"
REALM = "hongliu-directory"
#: Larger start indexes are clamped: nothing lies past them, and the database needs a bigint.
MAX_START_INDEX = 2**31
WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE"]
GRANT_TYPE = "client_credentials"
#: Headers of a Werkzeug HTTP error worth keeping on its SCIM answer (the body is replaced).
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


class Refusal(Exception):
    """A request the API refuses: HTTP status, SCIM error type, detail, and extra headers."""

    def __init__(
        self,
        status: int,
        detail: str,
        scim_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers or {}


def _scim_response(body: dict[str, Any], status: int = 200) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False), status, mimetype=MEDIA_TYPE)
    # Directory data must not sit in shared caches.
    response.headers["Cache-Control"] = "no-store"
    return response


def _challenge(error: str | None = None, description: str | None = None) -> dict[str, str]:
    parts = [f'realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{description}"')
    if error == "insufficient_scope":
        parts.append(f'scope="{scim.DIRECTORY_SCOPE}"')
    return {"WWW-Authenticate": "Bearer " + ", ".join(parts)}


def _authorized_client() -> OidcClient:
    """The client whose bearer token may read the directory; Refusal otherwise."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    token_string = value.strip()
    if scheme.lower() != "bearer" or not token_string:
        # RFC 6750 §3.1: a request without credentials gets a challenge with no error code.
        raise Refusal(
            401, "An access token (Authorization: Bearer …) is required.", None, _challenge()
        )
    token = find_token(token_string, "access_token")
    if token is None or token.kind != "access_token":
        raise Refusal(
            401,
            "The access token is not valid.",
            None,
            _challenge("invalid_token", "The access token is not valid"),
        )
    g.scim_client_id = token.row.client.client_id
    if token.is_revoked() or not token.row.client.enabled:
        raise Refusal(
            401,
            "The access token was revoked.",
            None,
            _challenge("invalid_token", "The access token was revoked"),
        )
    if token.is_expired():
        raise Refusal(
            401,
            "The access token expired.",
            None,
            _challenge("invalid_token", "The access token expired"),
        )
    if token.row.user_id is not None:
        # A person's token (authorization code) never reads the whole directory.
        raise Refusal(
            403,
            "The directory is read with a client-credentials token.",
            None,
            _challenge("insufficient_scope", "A client-credentials token is needed"),
        )
    client: OidcClient = token.row.client
    # The registration as it is now, not as it was when the token was issued: an
    # administrator taking the grant or the scope away ends the tokens already out.
    if GRANT_TYPE not in (client.grant_types or []):
        raise Refusal(
            401,
            "The client is no longer registered for the client-credentials grant.",
            None,
            _challenge("invalid_token", "The client may no longer use client credentials"),
        )
    if scim.DIRECTORY_SCOPE not in token.row.scope.split() or scim.DIRECTORY_SCOPE not in (
        client.scopes or []
    ):
        raise Refusal(
            403,
            f"The access token lacks the scope {scim.DIRECTORY_SCOPE}.",
            None,
            _challenge("insufficient_scope", "The token lacks directory.read"),
        )
    return client


@bp.errorhandler(Refusal)
def refused(refusal: Refusal) -> ResponseReturnValue:
    """Audit the refusal and answer with a SCIM Error."""
    try:
        db.session.rollback()
        record(
            "directory.read",
            DENIED if refusal.status in (401, 403) else FAILURE,
            subject=g.get("scim_client_id"),
            detail={
                "status": refusal.status,
                "reason": refusal.scim_type or refusal.detail,
                "path": request.path[:200],
            },
        )
        db.session.commit()
    except Exception as error:  # a refusal that cannot be audited is a failure (503 if down)
        return failed(error)
    response = _scim_response(
        scim.error_body(refusal.status, refusal.detail, refusal.scim_type), refusal.status
    )
    response.headers.update(refusal.headers)
    return response


@bp.errorhandler(Exception)
def failed(error: Exception) -> ResponseReturnValue:
    """Anything else that goes wrong under /scim/v2, answered as a SCIM Error, never a page.

    A Werkzeug HTTP error raised here (Flask hands those to this handler too) keeps its status
    and headers, as a refusal. Any other error is rolled back and logged: 503 with
    ``Retry-After`` when the database or the store did not answer, else 500. Flask also calls
    this with an ``InternalServerError`` wrapping what failed after the view (a response hook).
    """
    if isinstance(error, HTTPException) and error.code is not None and error.code < 500:
        headers = error.get_response().headers
        kept = {name: headers[name] for name in KEPT_HEADERS if name in headers}
        return refused(Refusal(error.code, error.description or error.name, headers=kept))
    cause = getattr(error, "original_exception", None) or error
    try:
        db.session.rollback()
    except Exception:  # a dead connection may refuse even the rollback
        current_app.logger.warning("scim: could not roll back after an error", exc_info=True)
    current_app.logger.error(
        "scim: %s %s failed (client %s)",
        request.method,
        request.path,
        g.get("scim_client_id", "-"),
        exc_info=cause,
    )
    if is_outage(cause):
        detail = f"The directory is unavailable for a moment; retry in {RETRY_AFTER_OUTAGE} s."
        response = _scim_response(scim.error_body(503, detail), 503)
        response.headers["Retry-After"] = str(RETRY_AFTER_OUTAGE)
        return response
    status = error.code if isinstance(error, HTTPException) and error.code else 500
    detail = (
        "The directory could not answer; the failure was logged "
        f"(request id {g.get('request_id', '-')})."
    )
    return _scim_response(scim.error_body(status, detail), status)


def _integer(name: str, default: int) -> int:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise Refusal(400, f"{name} must be a whole number.", "invalidValue") from None


def _paging() -> tuple[int, int]:
    # RFC 7644 §3.4.2.4: below 1 means 1; a negative count means 0; above the maximum, the
    # maximum (ServiceProviderConfig tells clients what it is).
    start_index = min(max(1, _integer("startIndex", 1)), MAX_START_INDEX)
    count = min(max(0, _integer("count", scim.DEFAULT_COUNT)), scim.MAX_COUNT)
    return start_index, count


def _filter() -> Node | None:
    raw = request.args.get("filter")
    if raw is None or not raw.strip():
        return None
    try:
        return parse_filter(raw)
    except FilterError as exc:
        raise Refusal(400, f"Unsupported or malformed filter: {exc}", "invalidFilter") from None


def _projection(core: str) -> tuple[str | None, str | None]:
    return request.args.get("attributes"), request.args.get("excludedAttributes")


def _served(client: OidcClient, what: str, count: int) -> None:
    current_app.logger.info("scim: %s served %d to client %s", what, count, client.client_id)


@bp.get("/Users")
def users() -> Response:
    """List Users (filter, startIndex, count, attributes, excludedAttributes)."""
    client = _authorized_client()
    start_index, count = _paging()
    node = _filter()
    try:
        page = scim.list_users(node, start_index, count)
    except FilterError as exc:
        raise Refusal(400, f"Unsupported or malformed filter: {exc}", "invalidFilter") from None
    attributes, excluded = _projection(scim.USER_SCHEMA)
    page.resources = [
        scim.project(r, attributes, excluded, scim.USER_SCHEMA) for r in page.resources
    ]
    _served(client, "Users", len(page.resources))
    return _scim_response(scim.list_response(page, start_index))


@bp.get("/Users/<resource_id>")
def user(resource_id: str) -> Response:
    """One User by id."""
    _authorized_client()
    resource = scim.get_user(resource_id)
    if resource is None:
        raise Refusal(404, f"No User with id {resource_id[:64]}.")
    attributes, excluded = _projection(scim.USER_SCHEMA)
    return _scim_response(scim.project(resource, attributes, excluded, scim.USER_SCHEMA))


@bp.get("/Groups")
def groups() -> Response:
    """List Groups: departments, then positions."""
    client = _authorized_client()
    start_index, count = _paging()
    node = _filter()
    attributes, excluded = _projection(scim.GROUP_SCHEMA)
    try:
        page = scim.list_groups(node, start_index, count, scim.wants_members(attributes, excluded))
    except FilterError as exc:
        raise Refusal(400, f"Unsupported or malformed filter: {exc}", "invalidFilter") from None
    page.resources = [
        scim.project(r, attributes, excluded, scim.GROUP_SCHEMA) for r in page.resources
    ]
    _served(client, "Groups", len(page.resources))
    return _scim_response(scim.list_response(page, start_index))


@bp.get("/Groups/<resource_id>")
def group(resource_id: str) -> Response:
    """One Group by id (``dept-<n>`` or ``pos-<n>``)."""
    _authorized_client()
    attributes, excluded = _projection(scim.GROUP_SCHEMA)
    resource = scim.get_group(resource_id, scim.wants_members(attributes, excluded))
    if resource is None:
        raise Refusal(404, f"No Group with id {resource_id[:64]}.")
    return _scim_response(scim.project(resource, attributes, excluded, scim.GROUP_SCHEMA))


@bp.route("/Users", methods=WRITE_METHODS)
@bp.route("/Users/<resource_id>", methods=WRITE_METHODS)
@bp.route("/Groups", methods=WRITE_METHODS)
@bp.route("/Groups/<resource_id>", methods=WRITE_METHODS)
def read_only(resource_id: str | None = None) -> Response:
    """The directory is kept by HR imports: SCIM writes are refused."""
    _authorized_client()
    raise Refusal(
        405,
        "The directory API is read-only; people and departments come from HR imports.",
        headers={"Allow": "GET"},
    )


@bp.get("/ServiceProviderConfig")
def provider_config() -> Response:
    """What this service provider supports."""
    return _scim_response(service_provider_config())


def _listed(resources: list[dict[str, Any]]) -> Response:
    return _scim_response(scim.list_response(scim.Page(len(resources), resources), 1))


@bp.get("/Schemas")
def schema_list() -> Response:
    """Every schema."""
    return _listed(schemas())


@bp.get("/Schemas/<path:schema_id>")
def schema(schema_id: str) -> Response:
    """One schema by URN."""
    for document in schemas():
        if document["id"] == schema_id:
            return _scim_response(document)
    raise Refusal(404, f"No schema {schema_id[:200]}.")


@bp.get("/ResourceTypes")
def resource_type_list() -> Response:
    """The User and Group resource types."""
    return _listed(resource_types())


@bp.get("/ResourceTypes/<name>")
def resource_type(name: str) -> Response:
    """One resource type."""
    for document in resource_types():
        if document["id"] == name:
            return _scim_response(document)
    raise Refusal(404, f"No resource type {name[:64]}.")


@bp.route("", defaults={"anything": ""}, methods=["GET", *WRITE_METHODS])
@bp.route("/", defaults={"anything": ""}, methods=["GET", *WRITE_METHODS])
@bp.route("/<path:anything>", methods=["GET", *WRITE_METHODS])
def unknown(anything: str) -> Response:
    """Anything else under /scim/v2, the base address itself too (where a client configured
    with it may knock first), is a SCIM 404, not an HTML page."""
    raise Refusal(404, "No such SCIM endpoint.")


def setup_scim(app: Flask) -> None:
    """Register the API; clients post without a CSRF token (and are refused: read-only)."""
    from idp.extensions import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)
