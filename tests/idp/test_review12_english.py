"""What an English-speaking admin reads when the console refuses a client's settings: a list
inside a message is separated as English is (", "), not by the Chinese 、 (found by the
form-fuzzing crawler's English visitors)."""

from __future__ import annotations

from flask import Flask

from idp.admin.registry_operations import CasSettings, OidcSettings, _check_cas, _check_oidc
from idp.clients.operations import CAS_ATTRIBUTES


def test_lists_in_refusals_are_separated_by_commas_in_english(idp_app: Flask) -> None:
    """Unknown department codes, invalid scopes and the CAS attributes one may choose: each
    list in the English message reads "a, b", as the catalogue translates 、."""
    with idp_app.test_request_context(headers={"Accept-Language": "en"}):
        cas = _check_cas(
            CasSettings(
                name="Library",
                service_pattern=r"^https://lib\.example\.edu\.cn/.*$",
                attributes=["no-such-attribute"],
                allowed_departments=["NOPE1", "NOPE2"],
            )
        )
        oidc = _check_oidc(
            OidcSettings(
                name="Portal",
                redirect_uris=["https://portal.example.edu.cn/callback"],
                scopes=["openid", "bad scope", "évil"],
            ),
            ["authorization_code"],
            public=False,
        )
    names = ", ".join(CAS_ATTRIBUTES)
    assert cas["attributes"] == f"Only these attributes can be chosen: {names}"
    assert cas["allowed_departments"] == "No such department code: NOPE1, NOPE2"
    assert oidc["scopes"] == "Invalid scope: bad scope, évil"
