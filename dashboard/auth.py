"""Authentication: one JWT, carried in a cookie by the browser and in the Authorization header by API clients.

- ``POST /login`` (a plain server-rendered form) checks the password with
  :func:`netpulse.users.authenticate` and sets two cookies: ``netpulse_access`` (the JWT, HttpOnly) and
  ``netpulse_csrf`` (readable by scripts). Cookie-borne JWTs need the CSRF value echoed in the
  ``X-CSRF-Token`` header on POST/PUT/PATCH/DELETE (double submit); the Dash renderer is told to read
  that cookie and send that header, so its callback POSTs pass.
- API clients send ``Authorization: Bearer <token>`` from ``POST /api/v1/auth/login``; no CSRF there.
- Every other route (the Dash pages and every ``/_dash-*`` request) needs a valid token: a browser
  page request without one is redirected to ``/login?next=...``, anything else gets a 401 envelope.
- A cookie token that is within ``REFRESH_WITHIN`` of expiring is re-issued on the way out (the user is
  re-read, so a deactivated user or a changed role takes effect), keeping a wall screen signed in.

The token's claims: ``sub`` (user id), ``org`` (organization id), ``role`` and ``email``.
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, render_template_string, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    get_jwt,
    get_jwt_request_location,
    set_access_cookies,
    unset_jwt_cookies,
    verify_jwt_in_request,
)
from flask_jwt_extended.exceptions import JWTDecodeError, JWTExtendedException
from jwt.exceptions import ExpiredSignatureError, PyJWTError
from sqlalchemy.orm import Session, sessionmaker

from dashboard.envelope import failure
from netpulse.config import Settings
from netpulse.schema import Role, User
from netpulse.users import PERMISSIONS, authenticate

__all__ = ["ACCESS_COOKIE", "CSRF_COOKIE", "CSRF_HEADER", "ACCESS_TTL", "REFRESH_WITHIN", "bp",
           "configure_jwt", "install_guard", "issue_access_token", "current_claims", "current_org_id",
           "role_allows", "sessionmaker_of"]

ACCESS_COOKIE = "netpulse_access"
CSRF_COOKIE = "netpulse_csrf"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_CSRF_COOKIE = "netpulse_login_csrf"
ACCESS_TTL = timedelta(hours=8)          # one NOC shift
REFRESH_WITHIN = timedelta(hours=1)      # re-issue a cookie token this close to its expiry

# Reachable without a token. The API authenticates per endpoint (its 401s are envelopes).
PUBLIC_PATHS = frozenset({"/login", "/logout", "/alive", "/ready", "/health", "/healthz", "/metrics"})
API_PREFIX = "/api/"

bp = Blueprint("auth", __name__)


def sessionmaker_of(app: Flask) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = app.extensions["netpulse.sessionmaker"]
    return factory


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configure_jwt(app: Flask, settings: Settings) -> JWTManager:
    """flask-jwt-extended: tokens in headers and cookies, CSRF double submit on for cookies."""
    app.config.update(
        JWT_SECRET_KEY=settings.require_secret_key(),
        JWT_TOKEN_LOCATION=["headers", "cookies"],
        JWT_ACCESS_TOKEN_EXPIRES=ACCESS_TTL,
        JWT_ACCESS_COOKIE_NAME=ACCESS_COOKIE,
        JWT_ACCESS_COOKIE_PATH="/",
        JWT_COOKIE_CSRF_PROTECT=True,
        JWT_CSRF_IN_COOKIES=True,
        JWT_ACCESS_CSRF_COOKIE_NAME=CSRF_COOKIE,
        JWT_ACCESS_CSRF_HEADER_NAME=CSRF_HEADER,
        JWT_COOKIE_SAMESITE="Lax",
        # Secure cookies need HTTPS; the demo and development serve plain HTTP on loopback.
        JWT_COOKIE_SECURE=settings.env == "production" and not _is_loopback(settings.http_host),
        JWT_SESSION_COOKIE=True,
    )
    jwt = JWTManager(app)

    @jwt.unauthorized_loader
    def _missing(reason: str) -> Response:  # no token, or a cookie token without its CSRF header
        return failure("AUTHENTICATION_REQUIRED", f"Authentication required: {reason}", 401)

    @jwt.invalid_token_loader
    def _invalid(reason: str) -> Response:
        return failure("INVALID_TOKEN", f"Invalid token: {reason}", 401)

    @jwt.expired_token_loader
    def _expired(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return failure("TOKEN_EXPIRED", "The token has expired: sign in again", 401)

    @jwt.token_verification_failed_loader
    def _rejected(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return failure("INVALID_TOKEN", "The token's claims were rejected", 401)

    return jwt


def issue_access_token(user: User) -> str:
    """A signed access token for ``user`` with the claims every view relies on."""
    return create_access_token(
        identity=str(user.id),
        additional_claims={"org": str(user.organization_id), "role": user.role, "email": user.email},
    )


def current_claims() -> dict[str, Any]:
    """The verified token's claims, or ``{}`` outside an authenticated request."""
    try:
        return get_jwt()
    except RuntimeError:  # verify_jwt_in_request() was not called in this request
        return {}


def current_org_id() -> uuid.UUID:
    """The organization of the signed-in user (every tenant query filters by it)."""
    return uuid.UUID(str(get_jwt()["org"]))


def role_allows(role: str, permission: str) -> bool:
    """The spec's RBAC table; an unknown role is allowed nothing."""
    try:
        granted = PERMISSIONS[Role(role)]
    except ValueError:
        return False
    return "*" in granted or permission in granted


# --- the guard -------------------------------------------------------------------------------------

def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(API_PREFIX)


def _safe_next(target: str | None) -> str:
    """Only same-site absolute paths are followed after login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _redirect(location: str, code: int = 302) -> Response:
    return Response(status=code, headers={"Location": location})


def _reject(exc: Exception) -> Response:
    """A browser page request goes to the login form; an XHR (Dash callback, asset) gets a 401 envelope."""
    expired = isinstance(exc, ExpiredSignatureError)
    if request.method == "GET" and not request.path.startswith("/_dash-"):
        target = request.full_path.rstrip("?") if request.query_string else request.path
        response = _redirect(f"/login?next={quote(target, safe='/')}", code=302)
    elif expired:
        response = failure("TOKEN_EXPIRED", "The session has expired: sign in again", 401)
    else:
        response = failure("AUTHENTICATION_REQUIRED", f"Authentication required: {exc}", 401)
    if isinstance(exc, PyJWTError | JWTDecodeError) and request.cookies.get(ACCESS_COOKIE):
        unset_jwt_cookies(response)  # an expired or tampered cookie would only fail again
    return response


def _require_token() -> Response | None:
    if _is_public(request.path):
        return None
    try:
        verify_jwt_in_request()
    except (JWTExtendedException, PyJWTError) as exc:
        return _reject(exc)
    return None


def _refresh_cookie(response: Response) -> Response:
    """Re-issue a cookie token close to expiry, re-reading the user (deactivation and role changes apply)."""
    if response.status_code >= 400 or get_jwt_request_location() != "cookies":
        return response
    claims = get_jwt()
    left = datetime.fromtimestamp(int(claims["exp"]), UTC) - datetime.now(UTC)
    if left > REFRESH_WITHIN:
        return response
    with sessionmaker_of(current_app)() as session:
        user = session.get(User, uuid.UUID(str(claims["sub"])))
        if user is not None and user.is_active:
            set_access_cookies(response, issue_access_token(user))
    return response


def install_guard(app: Flask) -> None:
    """Require a token everywhere but the public paths. Register after Dash so its setup hooks run first."""
    app.before_request(_require_token)
    app.after_request(_refresh_cookie)


# --- the login form --------------------------------------------------------------------------------

_LOGIN_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · NetPulse</title>
<link rel="icon" href="data:,">
<style>
  :root { color-scheme: dark; }
  * { box-sizing: border-box; }
  body { margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center;
         font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
         background: radial-gradient(1200px 600px at 50% -10%, #1b2736 0%, #0d1117 60%); color: #e6edf3; }
  .card { width: 100%; max-width: 380px; padding: 2rem 2rem 1.5rem; border-radius: 12px;
          background: #161b22; border: 1px solid #30363d; box-shadow: 0 12px 40px rgba(0,0,0,.45); }
  .brand { display: flex; align-items: center; gap: .6rem; font-size: 1.35rem; font-weight: 700;
           letter-spacing: .02em; }
  .dot { width: 12px; height: 12px; border-radius: 50%; background: #3fb950;
         box-shadow: 0 0 0 4px rgba(63,185,80,.18); }
  .sub { margin: .35rem 0 1.5rem; color: #8b949e; font-size: .9rem; }
  label { display: block; margin: 0 0 .35rem; font-size: .85rem; color: #c9d1d9; }
  input[type=email], input[type=password] {
    width: 100%; padding: .6rem .75rem; margin-bottom: 1rem; border-radius: 6px; font-size: .95rem;
    border: 1px solid #30363d; background: #0d1117; color: #e6edf3; }
  input:focus { outline: none; border-color: #388bfd; box-shadow: 0 0 0 3px rgba(56,139,253,.25); }
  button { width: 100%; padding: .65rem; border: 0; border-radius: 6px; font-size: .95rem; font-weight: 600;
           background: #238636; color: #fff; cursor: pointer; }
  button:hover { background: #2ea043; }
  .error { margin-bottom: 1rem; padding: .6rem .75rem; border-radius: 6px; font-size: .875rem;
           background: rgba(248,81,73,.12); border: 1px solid rgba(248,81,73,.45); color: #ffa198; }
  .foot { margin-top: 1.25rem; text-align: center; color: #6e7681; font-size: .75rem; }
</style>
</head>
<body>
<main class="card">
  <div class="brand"><span class="dot"></span>NetPulse</div>
  <p class="sub">Network operations center &mdash; sign in to continue</p>
  {% if error %}<div class="error" id="login-error" role="alert">{{ error }}</div>{% endif %}
  <form method="post" action="/login" autocomplete="on">
    <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
    <input type="hidden" name="next" value="{{ next }}">
    <label for="email">Email</label>
    <input id="email" name="email" type="email" value="{{ email }}" required autofocus autocomplete="username">
    <label for="password">Password</label>
    <input id="password" name="password" type="password" required autocomplete="current-password">
    <button id="login-submit" type="submit">Sign in</button>
  </form>
  <div class="foot">Sessions last {{ hours }} hours.</div>
</main>
</body>
</html>
"""


def _login_page(*, error: str | None = None, email: str = "", next_path: str = "/", status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    html = render_template_string(_LOGIN_PAGE, error=error, email=email, next=next_path, csrf_token=token,
                                  hours=int(ACCESS_TTL.total_seconds() // 3600))
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    # Double submit for the form itself: the hidden field must match this cookie (no login CSRF).
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/login",
                        secure=bool(current_app.config.get("JWT_COOKIE_SECURE")))
    return response


@bp.get("/login")
def login_form() -> Response:
    next_path = _safe_next(request.args.get("next"))
    try:
        if verify_jwt_in_request(optional=True):
            return _redirect(next_path)  # already signed in
    except (JWTExtendedException, PyJWTError):
        pass  # a stale cookie: show the form
    return _login_page(next_path=next_path)


@bp.post("/login")
def login_submit() -> Response:
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    next_path = _safe_next(request.form.get("next"))
    sent, expected = request.form.get("csrf_token", ""), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(sent, expected):
        return _login_page(error="The form expired. Please sign in again.", email=email, next_path=next_path,
                           status=400)
    if not email or not password:
        return _login_page(error="Enter your email and password.", email=email, next_path=next_path, status=400)
    with sessionmaker_of(current_app)() as session, session.begin():
        user = authenticate(session, email, password)
        token = issue_access_token(user) if user is not None else None
    if token is None:
        # 200 like any re-rendered form (a 401 would need a WWW-Authenticate challenge).
        return _login_page(error="Invalid email or password.", email=email, next_path=next_path)
    response = _redirect(next_path, code=303)
    set_access_cookies(response, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Response:
    response = _redirect("/login", code=303)
    unset_jwt_cookies(response)
    return response
