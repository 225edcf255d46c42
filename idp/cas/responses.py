"""CAS protocol answers: CAS 1 text, CAS 2/3 XML (namespace ``http://www.yale.edu/tp/cas``) and
the JSON shapes of the specification, plus the attributes a service is allowed to learn."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Response

from idp.cas.tickets import Grant
from idp.clients.models import CasService
from idp.directory.models import User

CAS_NAMESPACE = "http://www.yale.edu/tp/cas"
ET.register_namespace("cas", CAS_NAMESPACE)

XML = "XML"
JSON = "JSON"
FORMATS = (XML, JSON)

#: Characters XML 1.0 cannot carry at all; dropped from values rather than breaking clients.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

Attributes = dict[str, list[Any]]


def released_attributes(service: CasService, user: User) -> Attributes:
    """The attributes ``service`` is registered for, as lists (a person may lack some)."""
    department = user.department
    available: dict[str, str | None] = {
        "name": user.name,
        "account": user.account,
        "kind": str(user.kind),  # a StrEnum: its value
        "department": department.code if department else None,
        "department_name": department.name if department else None,
        # Unverified contact details are not the person's as far as the IdP knows.
        "email": user.email if user.has_security_email else None,
        "phone": user.phone if user.has_security_phone else None,
    }
    return {name: [available[name]] for name in service.attributes or [] if available.get(name)}


def protocol_attributes(grant: Grant) -> Attributes:
    """The three attributes CAS 3.0 defines for every successful ``/p3/`` validation."""
    moment = grant.auth_time.astimezone(UTC).isoformat(timespec="seconds")
    return {
        "authenticationDate": [moment.replace("+00:00", "Z")],
        "isFromNewLogin": [grant.new_login],
        "longTermAuthenticationRequestTokenUsed": [grant.remember],
    }


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return _NOT_XML.sub("", str(value))


def _tag(name: str) -> str:
    return f"{{{CAS_NAMESPACE}}}{name}"


def _xml(root: ET.Element) -> Response:
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
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
    root = ET.Element(_tag("serviceResponse"))
    node = ET.SubElement(root, _tag("authenticationSuccess"))
    ET.SubElement(node, _tag("user")).text = _text(user)
    if attributes:
        holder = ET.SubElement(node, _tag("attributes"))
        for name, values in attributes.items():
            for value in values:  # multi-valued attributes repeat the element
                ET.SubElement(holder, _tag(name)).text = _text(value)
    if pgt_iou:
        ET.SubElement(node, _tag("proxyGrantingTicket")).text = pgt_iou
    if proxies:
        holder = ET.SubElement(node, _tag("proxies"))
        for proxy in proxies:
            ET.SubElement(holder, _tag("proxy")).text = _text(proxy)
    return _xml(root)


def _failure(element: str, code: str, description: str, fmt: str) -> Response:
    if fmt == JSON:
        return _json(
            {"serviceResponse": {element: {"code": code, "description": _text(description)}}}
        )
    root = ET.Element(_tag("serviceResponse"))
    node = ET.SubElement(root, _tag(element), {"code": code})
    node.text = _text(description)
    return _xml(root)


def validation_failure(code: str, description: str, fmt: str = XML) -> Response:
    """``authenticationFailure`` with one of the specification's codes."""
    return _failure("authenticationFailure", code, description, fmt)


def proxy_success(ticket: str, fmt: str = XML) -> Response:
    """``proxySuccess`` carrying a new PT."""
    if fmt == JSON:
        return _json({"serviceResponse": {"proxySuccess": {"proxyTicket": ticket}}})
    root = ET.Element(_tag("serviceResponse"))
    node = ET.SubElement(root, _tag("proxySuccess"))
    ET.SubElement(node, _tag("proxyTicket")).text = ticket
    return _xml(root)


def proxy_failure(code: str, description: str, fmt: str = XML) -> Response:
    """``proxyFailure`` with a code."""
    return _failure("proxyFailure", code, description, fmt)


def cas1_answer(user: str | None) -> Response:
    """CAS 1.0 ``/validate``: ``yes\\n<user>\\n`` or ``no\\n``."""
    body = f"yes\n{user}\n" if user else "no\n"
    return _no_store(Response(body, mimetype="text/plain"))
