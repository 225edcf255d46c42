"""``flask --app idp clients …``: register OIDC relying parties and CAS services."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import click
from flask import Flask
from flask.cli import AppGroup

from idp.audit.operations import record
from idp.clients.models import CasService, OidcClient
from idp.clients.operations import (
    CAS_ATTRIBUTES,
    GRANT_TYPES,
    ID_TOKEN_ALGS,
    register_cas_service,
    register_oidc_client,
)
from idp.clients.rules import ClientError
from idp.extensions import db
from idp.oidc.keys import DEFAULT_ALGORITHM, client_algorithm, signing_algorithms

clients = AppGroup("clients", help="Register and list OIDC clients and CAS services.")


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


def describe_oidc(client: OidcClient) -> dict[str, Any]:
    """The registration as the protocols name it (never the secret's hash)."""
    return {
        "protocol": "oidc",
        "client_id": client.client_id,
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "grant_types": client.grant_types,
        "scope": " ".join(client.scopes),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "first_party": client.first_party,
        "require_pkce": client.require_pkce,
        "id_token_signed_response_alg": client_algorithm(client),
        "enabled": client.enabled,
    }


def describe_cas(service: CasService) -> dict[str, Any]:
    """A CAS service registration."""
    return {
        "protocol": "cas",
        "id": service.id,
        "name": service.name,
        "service": service.service_pattern,
        "attributes": service.attributes,
        "proxy": service.proxy_allowed,
        "single_logout": service.single_logout,
        "enabled": service.enabled,
    }


@clients.command("add-oidc")
@click.argument("name")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI.")
@click.option("--post-logout-uri", "post_logout_uris", multiple=True)
@click.option("--backchannel-logout-uri")
@click.option(
    "--public", is_flag=True, help="A client that cannot keep a secret (PKCE, no secret)."
)
@click.option("--first-party", is_flag=True, help="A university system: no consent page.")
@click.option("--no-require-pkce", is_flag=True, help="For a legacy confidential client only.")
@click.option("--grant-type", "grant_types", multiple=True, type=click.Choice(GRANT_TYPES))
@click.option("--scope", "scopes", multiple=True, help="Allowed scope (repeatable).")
@click.option("--auth-method", type=click.Choice(["client_secret_basic", "client_secret_post"]))
@click.option(
    "--id-token-alg",
    type=click.Choice(ID_TOKEN_ALGS),
    default=DEFAULT_ALGORITHM,
    show_default=True,
    help="Signs its ID tokens and logout tokens (id_token_signed_response_alg).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the client, secret included, as JSON.")
def add_oidc(
    name: str,
    redirect_uris: tuple[str, ...],
    post_logout_uris: tuple[str, ...],
    backchannel_logout_uri: str | None,
    public: bool,
    first_party: bool,
    no_require_pkce: bool,
    grant_types: tuple[str, ...],
    scopes: tuple[str, ...],
    auth_method: str | None,
    id_token_alg: str,
    as_json: bool,
) -> None:
    """Register an OpenID Connect client; its secret is printed once."""
    if id_token_alg not in signing_algorithms():
        # Its tokens would otherwise be signed by a key nobody chose to publish.
        _fail(
            f"there is no {id_token_alg} signing key yet; run "
            f"`flask --app idp keys rotate --alg {id_token_alg}` first"
        )
    try:
        client, secret = register_oidc_client(
            name,
            list(redirect_uris),
            post_logout_uris=list(post_logout_uris),
            backchannel_logout_uri=backchannel_logout_uri,
            public=public,
            first_party=first_party,
            require_pkce=not no_require_pkce,
            grant_types=list(grant_types) or None,
            scopes=list(scopes) or None,
            auth_method=auth_method,
            id_token_alg=id_token_alg,
        )
    except ClientError as exc:
        db.session.rollback()
        _fail(str(exc))
    record("client.create", subject=client.client_id, detail={"via": "cli", "protocol": "oidc"})
    db.session.commit()
    shown = {**describe_oidc(client), "client_secret": secret}
    if as_json:
        click.echo(json.dumps(shown, ensure_ascii=False))
        return
    click.echo(f"client_id:     {client.client_id}")
    if secret:
        click.echo(f"client_secret: {secret}   (shown once — store it now)")
    click.echo(f"redirect_uris: {' '.join(client.redirect_uris) or '-'}")


@clients.command("add-cas")
@click.argument("name")
@click.option("--service", "pattern", required=True, help="Regular expression for service URLs.")
@click.option("--attribute", "attributes", multiple=True, type=click.Choice(CAS_ATTRIBUTES))
@click.option("--proxy", is_flag=True, help="May obtain proxy-granting tickets.")
@click.option("--no-single-logout", is_flag=True, help="Do not send logout requests.")
@click.option("--json", "as_json", is_flag=True, help="Print the service as JSON.")
def add_cas(
    name: str,
    pattern: str,
    attributes: tuple[str, ...],
    proxy: bool,
    no_single_logout: bool,
    as_json: bool,
) -> None:
    """Register a CAS service."""
    try:
        service = register_cas_service(
            name,
            pattern,
            attributes=list(attributes),
            proxy_allowed=proxy,
            single_logout=not no_single_logout,
        )
    except ClientError as exc:
        db.session.rollback()
        _fail(str(exc))
    record("client.create", subject=f"cas:{service.id}", detail={"via": "cli", "protocol": "cas"})
    db.session.commit()
    if as_json:
        click.echo(json.dumps(describe_cas(service), ensure_ascii=False))
    else:
        click.echo(f"CAS service {service.id}: {service.name} — {service.service_pattern}")


@clients.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of every registration.")
def list_clients(as_json: bool) -> None:
    """List every OIDC client and CAS service."""
    rows = [
        describe_oidc(c) for c in db.session.scalars(db.select(OidcClient).order_by(OidcClient.id))
    ]
    rows += [
        describe_cas(s) for s in db.session.scalars(db.select(CasService).order_by(CasService.id))
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        if row["protocol"] == "oidc":
            click.echo(
                f"oidc {row['client_id']}  {row['client_name']}  "
                f"{' '.join(row['redirect_uris']) or '-'}"
            )
        else:
            click.echo(f"cas  {row['id']:<24} {row['name']}  {row['service']}")


def register(app: Flask) -> None:
    """Attach the ``clients`` group."""
    app.cli.add_command(clients)
