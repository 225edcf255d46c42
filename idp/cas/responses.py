"""CAS protocol answers: CAS 1 text, CAS 2/3 XML (namespace ``http://www.yale.edu/tp/cas``) and
the JSON shapes of the specification, plus the attributes a service is allowed to learn."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Response

from idp.cas.tickets import Grant
from idp.clients.models import CasService
from idp.directory.models import User

CAS_NAMESPACE = "http://www.yale.edu/tp/cas"

XML = "XML"
JSON = "JSON"
FORMATS = (XML, JSON)

#: Characters XML 1.0 cannot carry at all; dropped from values rather than breaking clients.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

Attributes = dict[str, list[Any]]


def released_attributes(service: CasService, user: User) -> Attributes:
    """The attributes ``service`` is registered for, as lists (a person may lack some)."""
    released: Attributes = {}
    for name in service.attributes or []:
        reader = _ATTRIBUTE_READERS.get(name)
        # Only what is released is read: the department is loaded just for services given it.
        value = reader(user) if reader else None
        if value:
            released[name] = [value]
    return released


def _department_code(user: User) -> str | None:
    return user.department.code if user.department else None


def _department_name(user: User) -> str | None:
    return user.department.name if user.department else None


_ATTRIBUTE_READERS: dict[str, Callable[[User], str | None]] = {
    "name": lambda user: user.name,
    "account": lambda user: user.account,
    "kind": lambda user: str(user.kind),  # a StrEnum: its value
    "department": _department_code,
    "department_name": _department_name,
    "departmentName": _department_name,  # the same, for Apache mod_auth_cas (no underscore)
    # Unverified contact details are not the person's as far as the IdP knows.
    "email": lambda user: user.email if user.has_security_email else None,
    "phone": lambda user: user.phone if user.has_security_phone else None,
}


def protocol_attributes(grant: Grant) -> Attributes:
    """The three attributes CAS 3.0 defines for every successful ``/p3/`` validation, and
    ``authenticationMethod``: how the session signed in (``password``, ``sms``, ``wechat``,
    ``wecom``, and ``totp`` once a second factor was verified), as OIDC's ``amr`` says it, so
    that a service can ask for two-step verification."""
    moment = grant.auth_time.astimezone(UTC).isoformat(timespec="seconds")
    return {
        "authenticationDate": [moment.replace("+00:00", "Z")],
        "isFromNewLogin": [grant.new_login],
        "longTermAuthenticationRequestTokenUsed": [grant.remember],
        "authenticationMethod": [m for m in grant.session.methods.split(",") if m],
    }


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return _NOT_XML.sub("", str(value))


#: XML text escapes (attribute values also escape quotes and whitespace, as ElementTree does).
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTRIBUTE_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\r": "&#13;",
        "\n": "&#10;",
        "\t": "&#09;",
    }
)
#: Element names come from code and the attribute registry (``[A-Za-z_]…``): never from input.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")

# The answer is written directly rather than built as an ElementTree and serialised: the same
# bytes (two-space indentation, ``cas:`` prefix), at a fraction of the cost per validation.
Lines = list[str]


def _leaf(lines: Lines, depth: int, name: str, value: Any, attributes: str = "") -> None:
    assert _NAME.fullmatch(name), name
    text = _text(value).translate(_TEXT_ESCAPES)
    pad = "  " * depth
    if text:
        lines.append(f"{pad}<cas:{name}{attributes}>{text}</cas:{name}>")
    else:
        lines.append(f"{pad}<cas:{name}{attributes} />")


def _open(lines: Lines, depth: int, name: str) -> None:
    lines.append(f"{'  ' * depth}<cas:{name}>")


def _close(lines: Lines, depth: int, name: str) -> None:
    lines.append(f"{'  ' * depth}</cas:{name}>")


def _xml(lines: Iterable[str]) -> Response:
    """``serviceResponse`` around the lines of its one child (depth 1 and deeper)."""
    body = "\n".join(
        [f'<cas:serviceResponse xmlns:cas="{CAS_NAMESPACE}">', *lines, "</cas:serviceResponse>"]
    )
    return _no_store(Response(body + "\n", mimetype="application/xml"))


def _json(document: Mapping[str, Any]) -> Response:
    return _no_store(
        Response(json.dumps(document, ensure_ascii=False), mimetype="application/json")
    )


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _json_attributes(attributes: Attributes) -> dict[str, Any]:
    # One value → a scalar, several → a list, as in the specification's JSON example.
    return {name: values[0] if len(values) == 1 else values for name, values in attributes.items()}


def validation_success(
    user: str,
    *,
    attributes: Attributes | None = None,
    pgt_iou: str | None = None,
    proxies: Sequence[str] = (),
    fmt: str = XML,
) -> Response:
    """``authenticationSuccess`` with the user, and optionally attributes, PGTIOU and proxies."""
    if fmt == JSON:
        success: dict[str, Any] = {"user": user}
        if pgt_iou:
            success["proxyGrantingTicket"] = pgt_iou
        if proxies:
            success["proxies"] = list(proxies)
        if attributes:
            success["attributes"] = _json_attributes(attributes)
        return _json({"serviceResponse": {"authenticationSuccess": success}})
    lines: Lines = []
    _open(lines, 1, "authenticationSuccess")
    _leaf(lines, 2, "user", user)
    if attributes:
        released = [(name, value) for name, values in attributes.items() for value in values]
        if not released:
            _leaf(lines, 2, "attributes", "")
        else:
            _open(lines, 2, "attributes")
            for name, value in released:  # multi-valued attributes repeat the element
                _leaf(lines, 3, name, value)
            _close(lines, 2, "attributes")
    if pgt_iou:
        _leaf(lines, 2, "proxyGrantingTicket", pgt_iou)
    if proxies:
        _open(lines, 2, "proxies")
        for proxy in proxies:
            _leaf(lines, 3, "proxy", proxy)
        _close(lines, 2, "proxies")
    _close(lines, 1, "authenticationSuccess")
    return _xml(lines)


def _failure(element: str, code: str, description: str, fmt: str) -> Response:
    if fmt == JSON:
        return _json(
            {"serviceResponse": {element: {"code": code, "description": _text(description)}}}
        )
    lines: Lines = []
    _leaf(lines, 1, element, description, f' code="{code.translate(_ATTRIBUTE_ESCAPES)}"')
    return _xml(lines)


def validation_failure(code: str, description: str, fmt: str = XML) -> Response:
    """``authenticationFailure`` with one of the specification's codes."""
    return _failure("authenticationFailure", code, description, fmt)


def proxy_success(ticket: str, fmt: str = XML) -> Response:
    """``proxySuccess`` carrying a new PT."""
    if fmt == JSON:
        return _json({"serviceResponse": {"proxySuccess": {"proxyTicket": ticket}}})
    lines: Lines = []
    _open(lines, 1, "proxySuccess")
    _leaf(lines, 2, "proxyTicket", ticket)
    _close(lines, 1, "proxySuccess")
    return _xml(lines)


def proxy_failure(code: str, description: str, fmt: str = XML) -> Response:
    """``proxyFailure`` with a code."""
    return _failure("proxyFailure", code, description, fmt)


def cas1_answer(user: str | None) -> Response:
    """CAS 1.0 ``/validate``: ``yes\\n<user>\\n`` or ``no\\n``."""
    body = f"yes\n{user}\n" if user else "no\n"
    return _no_store(Response(body, mimetype="text/plain"))
