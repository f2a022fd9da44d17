"""Authentication: one JWT, carried in a cookie by the browser and in the Authorization header by API clients.

- ``POST /login`` (a plain server-rendered form) checks the password with
  :func:`netpulse.users.authenticate` and sets two cookies: ``netpulse_access`` (the JWT, HttpOnly) and
  ``netpulse_csrf`` (readable by scripts). Cookie-borne JWTs need the CSRF value echoed in the
  ``X-CSRF-Token`` header on POST/PUT/PATCH/DELETE (double submit); the Dash renderer is told to read
  that cookie and send that header, so its callback POSTs pass.
- API clients send ``Authorization: Bearer <token>`` from ``POST /api/v1/auth/login``; no CSRF there.
- Every other route (the Dash pages and every ``/_dash-*`` request) needs a valid token: a browser
  page request without one is redirected to ``/login?next=...``, anything else gets a 401 envelope.
- Every verified token is checked against its user's current state (:mod:`netpulse.tokens`): a token
  issued before the user was disabled, changed role, organization or password, or signed out is
  refused at once (401 ``TOKEN_REVOKED``), and role and organization come from that state, never from
  the token. Signing out (``POST /logout``, ``POST /api/v1/auth/logout``) ends every session of the
  user: the token version lives on the user, so one sign-out reaches the wall screen too.
- Logins are limited per user and per client address (:func:`login`), before any password is hashed.
- A cookie token that is within ``REFRESH_WITHIN`` of expiring is re-issued on the way out, keeping a
  wall screen signed in.

The token's claims: ``sub`` (user id), ``ver`` (the user's token version), and, for display only,
``org``, ``role`` and ``email``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import math
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import redis
import structlog
from flask import Blueprint, Flask, Response, current_app, g, render_template_string, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    get_jwt,
    get_jwt_request_location,
    set_access_cookies,
    unset_jwt_cookies,
    verify_jwt_in_request,
)
from flask_jwt_extended.exceptions import CSRFError, JWTDecodeError, JWTExtendedException, RevokedTokenError
from jwt.exceptions import ExpiredSignatureError, PyJWTError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.orm import Session, sessionmaker

from dashboard.envelope import failure
from netpulse.config import Settings
from netpulse.errors import InvalidCredentials, RateLimited, Unavailable, ValidationError
from netpulse.ratelimit import SlidingWindow
from netpulse.schema import Role, User
from netpulse.tokens import UserState, UserStates, use_state_cache
from netpulse.users import MAX_PASSWORD_LENGTH, PERMISSIONS, authenticate, change_password, revoke_tokens

__all__ = ["ACCESS_COOKIE", "CSRF_COOKIE", "CSRF_HEADER", "ACCESS_TTL", "REFRESH_WITHIN", "bp",
           "configure_jwt", "install_guard", "issue_access_token", "current_claims", "current_org_id",
           "current_user", "role_allows", "sessionmaker_of", "user_states", "login", "LoginResult",
           "sign_out", "change_own_password", "current_user_id", "PAGE_CSP", "UNAVAILABLE_RETRY_S", "throttle",
           "MAX_EMAIL_LENGTH"]

log = structlog.get_logger("netpulse.dashboard.auth")

ACCESS_COOKIE = "netpulse_access"
CSRF_COOKIE = "netpulse_csrf"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_CSRF_COOKIE = "netpulse_login_csrf"
ACCESS_TTL = timedelta(hours=8)          # one NOC shift
REFRESH_WITHIN = timedelta(hours=1)      # re-issue a cookie token this close to its expiry

# Reachable without a token. The API authenticates per endpoint (its 401s are envelopes).
PUBLIC_PATHS = frozenset({"/login", "/logout", "/alive", "/ready", "/health", "/healthz", "/metrics"})
MAX_EMAIL_LENGTH = 254
UNAVAILABLE_RETRY_S = 5
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
API_PREFIX = "/api/"

bp = Blueprint("auth", __name__)


def sessionmaker_of(app: Flask) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = app.extensions["netpulse.sessionmaker"]
    return factory


def user_states(app: Flask) -> UserStates:
    states: UserStates = app.extensions["netpulse.user_states"]
    return states


def configure_jwt(app: Flask, settings: Settings, redis_client: Any) -> JWTManager:
    """flask-jwt-extended: tokens in headers and cookies, CSRF double submit on for cookies, every
    token checked against its user's current state; the login limiter on ``redis_client``."""
    states = UserStates(redis_client, sessionmaker_of(app), ttl_s=settings.auth_state_ttl_s)
    app.extensions["netpulse.user_states"] = states
    use_state_cache(lambda: redis_client)  # a user changed by any session drops its cached state
    app.extensions["netpulse.login_window"] = SlidingWindow(redis_client, prefix="netpulse:auth:login")
    app.extensions["netpulse.login_limit"] = settings.login_rate_limit
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
        # The sign-out form posts the CSRF value as a field (a plain form cannot send a header).
        JWT_CSRF_CHECK_FORM=True,
        # Lax: links from notifications open the dashboard signed in; cross-site POSTs carry no cookie.
        JWT_COOKIE_SAMESITE="Lax",
        # Secure is decided per request from its scheme (dashboard.security), not here.
        JWT_COOKIE_SECURE=False,
        JWT_SESSION_COOKIE=True,
    )
    jwt = JWTManager(app)

    @jwt.token_in_blocklist_loader
    def _revoked(header: dict[str, Any], payload: dict[str, Any]) -> bool:
        try:
            user_id = uuid.UUID(str(payload.get("sub")))
        except ValueError:
            return True
        state = user_states(current_app).get(user_id)
        if state is None or not state.accepts(payload.get("ver")):
            return True
        g.netpulse_user = state
        return False

    @jwt.revoked_token_loader
    def _revoked_answer(header: dict[str, Any], payload: dict[str, Any]) -> Response:
        return failure("TOKEN_REVOKED", REVOKED_MESSAGE, 401)

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


REVOKED_MESSAGE = ("The session has ended (signed out, or the user was disabled or changed role or "
                   "password): sign in again")


def issue_access_token(user: User) -> str:
    """A signed access token for ``user`` under the user's current token version."""
    return create_access_token(
        identity=str(user.id),
        additional_claims={"ver": user.token_version, "org": str(user.organization_id), "role": user.role,
                           "email": user.email},
    )


def current_user() -> UserState:
    """The signed-in user as the database has it now (set when the request's token was verified)."""
    state: UserState | None = g.get("netpulse_user")
    if state is None:
        raise RuntimeError("no verified token in this request")
    return state


def current_claims() -> dict[str, Any]:
    """The verified token's claims with ``role``, ``org`` and ``email`` as the user has them now, or
    ``{}`` outside an authenticated request."""
    try:
        claims = dict(get_jwt())
    except RuntimeError:  # verify_jwt_in_request() was not called in this request
        return {}
    state: UserState | None = g.get("netpulse_user")
    if state is None:
        return {}
    claims.update(role=state.role, org=state.organization_id, email=state.email)
    return claims


def current_org_id() -> uuid.UUID:
    """The organization of the signed-in user (every tenant query filters by it)."""
    return uuid.UUID(current_user().organization_id)


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
    elif isinstance(exc, RevokedTokenError):
        response = failure("TOKEN_REVOKED", REVOKED_MESSAGE, 401)
    else:
        response = failure("AUTHENTICATION_REQUIRED", f"Authentication required: {exc}", 401)
    dead = isinstance(exc, PyJWTError | JWTDecodeError | RevokedTokenError)
    if dead and request.cookies.get(ACCESS_COOKIE):
        unset_jwt_cookies(response)  # an expired, tampered or revoked cookie would only fail again
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
        if user is not None and user.is_active and user.token_version == claims.get("ver"):
            set_access_cookies(response, issue_access_token(user))
    return response


def install_guard(app: Flask) -> None:
    """Require a token everywhere but the public paths. Register after Dash so its setup hooks run first."""
    app.before_request(_require_token)
    app.after_request(_refresh_cookie)


# --- logging in and out ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LoginResult:
    token: str
    user: dict[str, str]


def _address_key() -> str:
    """The client's address for the per-address limit (after ProxyFix, the proxy's client); an IPv6
    client counts by its /64, which one subscriber usually holds whole."""
    raw = request.remote_addr or "-"
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return f"addr:{raw[:64]}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"addr:{address.ipv4_mapped}"
        return f"addr:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"addr:{address}"


def throttle(email: str) -> None:
    """Count this attempt against the user and the address (the spec's limit per minute each), before
    any password is hashed. The user key is a hash of the address as typed, so an unknown user is
    limited exactly like a known one. Without Redis no login is allowed (503): the limit is what keeps
    a password guesser from costing argon2 CPU at will."""
    window: SlidingWindow = current_app.extensions["netpulse.login_window"]
    limit: int = current_app.extensions["netpulse.login_limit"]
    user_key = "user:" + hashlib.sha256(email.lower().encode()).hexdigest()[:32]
    try:
        wait_ms = window.acquire([user_key, _address_key()], limit)
    except (redis.RedisError, OSError) as exc:
        log.error("netpulse.dashboard.login_limiter_unavailable", error=type(exc).__name__)
        raise Unavailable("Sign-in is unavailable right now (the rate limiter does not answer): try again "
                          "shortly") from None
    if wait_ms:
        retry_after = max(1, math.ceil(wait_ms / 1000))
        log.warning("netpulse.dashboard.login_throttled", address=request.remote_addr, retry_after_s=retry_after)
        raise RateLimited(f"Too many sign-in attempts: try again in {retry_after} s", retry_after_s=retry_after)


def _encodable(text: str) -> bool:
    """False for text JSON can carry but UTF-8 cannot (a lone surrogate such as "\\ud800")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def login(email: str, password: str) -> LoginResult:
    """Check the input, the rate limit and the password; a token for the user.

    Raises ValidationError (malformed input, 422), RateLimited (429), InvalidCredentials (401, the same
    whether the user exists or not) and Unavailable (503: the database or Redis does not answer).
    """
    email = email.strip()
    problems: dict[str, str] = {}
    if not email or len(email) > MAX_EMAIL_LENGTH or _CONTROL.search(email) or not _encodable(email):
        problems["email"] = f"must be an email address of at most {MAX_EMAIL_LENGTH} characters"
    if not password:
        problems["password"] = "required"
    elif len(password) > MAX_PASSWORD_LENGTH or not _encodable(password):
        problems["password"] = f"must be text of at most {MAX_PASSWORD_LENGTH} characters"
    if problems:
        raise ValidationError("invalid sign-in request", details=problems)
    throttle(email)
    try:
        with sessionmaker_of(current_app)() as session, session.begin():
            user = authenticate(session, email, password)
            if user is None:
                raise InvalidCredentials("Invalid email or password")
            return _result(user)
    except (OperationalError, SATimeoutError) as exc:
        log.error("netpulse.dashboard.login_database_unavailable", error=type(exc).__name__)
        raise Unavailable("Sign-in is unavailable right now (the database does not answer): try again "
                          "shortly") from None


def _result(user: User) -> LoginResult:
    return LoginResult(issue_access_token(user), {"id": str(user.id), "email": user.email, "role": user.role,
                                                  "organization_id": str(user.organization_id)})


def change_own_password(current: str, new: str) -> LoginResult:
    """The signed-in user's new password, after checking the current one under the login limit (a
    stolen token must not guess it at will); every earlier token of the user stops working, and the
    result carries a new one. Raises RateLimited, Unavailable, InvalidCredentials, ValidationError."""
    throttle(current_user().email)
    with sessionmaker_of(current_app)() as session, session.begin():
        user = session.get(User, current_user_id())
        if user is None:
            raise InvalidCredentials("your user no longer exists: sign in again", code="INVALID_TOKEN")
        change_password(session, user, current, new)
        return _result(user)  # the cached state goes with the commit (netpulse.tokens.use_state_cache)


def sign_out(user_id: uuid.UUID) -> None:
    """End every session of the user: its token version moves on, its cached state is dropped."""
    with sessionmaker_of(current_app)() as session, session.begin():
        revoke_tokens(session, user_id)
    user_states(current_app).forget(user_id)


# --- the login and sign-out pages ------------------------------------------------------------------

PAGE_CSS = """
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
"""
# The pages' Content-Security-Policy allows exactly this style block and nothing inline else.
PAGE_CSP = ("default-src 'none'; style-src 'sha256-"
            + base64.b64encode(hashlib.sha256(PAGE_CSS.encode()).digest()).decode()
            + "'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · NetPulse</title>
<link rel="icon" href="data:,">
<style>{{ css|safe }}</style>
</head>
<body>
<main class="card">
  <div class="brand"><span class="dot"></span>NetPulse</div>
  {% if logout %}
  <p class="sub">Sign out of every session of this account?</p>
  {% if error %}<div class="error" id="logout-error" role="alert">{{ error }}</div>{% endif %}
  <form method="post" action="/logout">
    <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
    <button id="logout-submit" type="submit">Sign out</button>
  </form>
  {% else %}
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
  {% endif %}
</main>
</body>
</html>
"""


def _page(*, status: int = 200, **values: Any) -> Response:
    values.setdefault("logout", False)
    html = render_template_string(_PAGE, css=PAGE_CSS, hours=int(ACCESS_TTL.total_seconds() // 3600), **values)
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


def _login_page(*, error: str | None = None, email: str = "", next_path: str = "/", status: int = 200,
                retry_after_s: int | None = None) -> Response:
    token = secrets.token_urlsafe(32)
    response = _page(title="Sign in", error=error, email=email, next=next_path, csrf_token=token, status=status)
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(retry_after_s)
    # Double submit for the form itself: the hidden field must match this cookie (no login CSRF).
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/login")
    return response


@bp.get("/login")
def login_form() -> Response:
    next_path = _safe_next(request.args.get("next"))
    try:
        if verify_jwt_in_request(optional=True):
            return _redirect(next_path)  # already signed in
    except (JWTExtendedException, PyJWTError):
        pass  # a stale or revoked cookie: show the form
    return _login_page(next_path=next_path)


@bp.post("/login")
def login_submit() -> Response:
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    next_path = _safe_next(request.form.get("next"))
    shown = email if not _CONTROL.search(email) else ""
    sent, expected = request.form.get("csrf_token", ""), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(sent, expected):
        return _login_page(error="The form expired. Please sign in again.", email=shown, next_path=next_path,
                           status=400)
    if not email or not password:
        return _login_page(error="Enter your email and password.", email=shown, next_path=next_path, status=400)
    try:
        result = login(email, password)
    except ValidationError:
        return _login_page(error="Enter a valid email address and password.", email=shown, next_path=next_path,
                           status=400)
    except RateLimited as exc:
        return _login_page(error=exc.message + ".", email=shown, next_path=next_path, status=429,
                           retry_after_s=exc.retry_after_s)
    except Unavailable as exc:
        return _login_page(error=exc.message + ".", email=shown, next_path=next_path, status=503,
                           retry_after_s=UNAVAILABLE_RETRY_S)
    except InvalidCredentials:
        # 200 like any re-rendered form (a 401 would need a WWW-Authenticate challenge).
        return _login_page(error="Invalid email or password.", email=shown, next_path=next_path)
    response = _redirect(next_path, code=303)
    set_access_cookies(response, result.token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@bp.get("/logout")
def logout_form() -> Response:
    """A confirmation page: signing out changes state, so it takes a POST carrying the CSRF value."""
    csrf = request.cookies.get(CSRF_COOKIE)
    if not csrf or not request.cookies.get(ACCESS_COOKIE):
        return _redirect("/login")
    return _page(title="Sign out", logout=True, csrf_token=csrf, error=None)


@bp.post("/logout")
def logout() -> Response:
    """End every session of the signed-in user (the form posts the CSRF value as ``csrf_token``)."""
    try:
        verify_jwt_in_request(locations=["cookies"])
    except CSRFError:
        csrf = request.cookies.get(CSRF_COOKIE, "")
        return _page(title="Sign out", logout=True, csrf_token=csrf, status=400,
                     error="The sign-out form expired: sign out again.")
    except (JWTExtendedException, PyJWTError):
        pass  # no session, or one that has already ended: only the cookies go
    else:
        sign_out(current_user_id())
    response = _redirect("/login", code=303)
    unset_jwt_cookies(response)
    return response


def current_user_id() -> uuid.UUID:
    return uuid.UUID(current_user().id)
