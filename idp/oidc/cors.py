"""Cross-origin answers for browser-based relying parties (single-page apps, public clients
with PKCE): the public documents, and the endpoints such a client calls from its own origin."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Response, jsonify, make_response, request
from flask.typing import ResponseReturnValue

#: Seconds a browser may reuse a CORS preflight answer.
PREFLIGHT_MAX_AGE = 3600
#: Response headers a cross-origin script may read besides the CORS-safelisted ones: a 401's
#: challenge says why the token or the client credentials were refused (RFC 6750 §3).
EXPOSED_HEADERS = "WWW-Authenticate"


def public_json(document: dict[str, Any]) -> Response:
    """``document`` as JSON anyone may read and cache for a while."""
    response = jsonify(document)
    # Browser-based relying parties read these cross-origin; they hold nothing secret.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def cross_origin(view: Callable[[], ResponseReturnValue]) -> Callable[[], Response]:
    """Let browser-based clients (public, with PKCE) call ``view`` from their own origin.

    Any origin, without credentials: these endpoints authenticate by client credentials, PKCE
    or a bearer token, never by a cookie. The route must list OPTIONS: the view then answers
    the preflight itself, with the route's methods.
    """

    @functools.wraps(view)
    def cross_origin_view() -> Response:
        if request.method == "OPTIONS":
            assert request.url_rule is not None and request.url_rule.methods is not None
            methods = sorted(request.url_rule.methods - {"HEAD", "OPTIONS"})
            response = Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = ", ".join(methods)
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        else:
            response = make_response(view())
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    return cross_origin_view
