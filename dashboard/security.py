"""Browser-facing hardening of every response: security headers, the Secure cookie flag, proxies.

- ``Content-Security-Policy``: scripts only from this server plus Dash's own inline renderer script,
  allowed by its hash (``Dash.csp_hashes``), so an injected ``<script>`` or ``onclick=`` never runs;
  no plugins, no framing (``frame-ancestors 'none'``), forms and XHR only to this origin. Styles
  allow inline ones: React and Plotly set ``style`` attributes on the elements they draw. Pages that
  set their own policy (the login page, with a hash of its one style block) keep it.
- ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` (for browsers without CSP level 2),
  ``Referrer-Policy: same-origin``, ``Cross-Origin-Opener-Policy: same-origin``, and
  ``Strict-Transport-Security`` on HTTPS responses.
- Cookies are marked ``Secure`` when the request came over HTTPS: directly, or as the first of
  ``NETPULSE_PROXY_HOPS`` trusted reverse proxies says in ``X-Forwarded-Proto`` (werkzeug's ProxyFix,
  which also takes the client address for the login limit from ``X-Forwarded-For``).
  ``NETPULSE_COOKIE_SECURE=always`` or ``never`` overrides it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from netpulse.config import Settings

__all__ = ["content_security_policy", "install_security", "HEADERS"]

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "max-age=31536000"
_SECURE = re.compile(r";\s*secure\s*(;|$)", re.IGNORECASE)


def content_security_policy(script_hashes: Sequence[str]) -> str:
    """The policy of the Dash app and the API, given the hashes of Dash's inline scripts."""
    return "; ".join([
        "default-src 'self'",
        "script-src 'self' " + " ".join(script_hashes),
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _wants_secure_cookies(mode: str) -> bool:
    return mode == "always" or (mode == "auto" and request.is_secure)


def _mark_cookies_secure(response: Response) -> None:
    cookies = response.headers.getlist("Set-Cookie")
    if not cookies or all(_SECURE.search(c) for c in cookies):
        return
    del response.headers["Set-Cookie"]
    for cookie in cookies:
        response.headers.add("Set-Cookie", cookie if _SECURE.search(cookie) else f"{cookie}; Secure")


def install_security(app: Flask, settings: Settings, csp: str) -> None:
    """Trust ``settings.proxy_hops`` proxies and add the headers and cookie flags to every response.

    Register before the auth guard: Flask runs ``after_request`` hooks last-registered first, and the
    guard's hook may set a renewed cookie that must be marked too.
    """
    hops = settings.proxy_hops
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    mode = settings.cookie_secure

    @app.after_request
    def _harden(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", csp)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        if _wants_secure_cookies(mode):
            _mark_cookies_secure(response)
        return response
