"""Sessions of API clients: sign in for a bearer token, sign out, change the password.

The browser signs in through ``/login``; these are the same functions (:mod:`dashboard.auth`) behind
JSON. Signing in and checking the current password count against the login limit (per user and per
client address): past it, a 429 with ``Retry-After``.
"""

from __future__ import annotations

from flask import current_app
from flask_jwt_extended import get_jwt_request_location, set_access_cookies, unset_jwt_cookies
from flask_openapi3 import Tag
from pydantic import ConfigDict, Field
from werkzeug.wrappers import Response

from dashboard import auth
from dashboard.api.params import ApiModel
from dashboard.api.routing import SIGNED_IN, ok, operation
from dashboard.api.schemas import Out
from netpulse.users import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH

TAG = Tag(name="auth", description="Tokens for API clients: sign in, sign out, change the password.")
# 429 past the login limit, 503 when the database or the limiter's Redis does not answer.
LIMITED = (429, 503)


class LoginBody(ApiModel):
    model_config = ConfigDict(openapi_extra={"example": {"email": "noc@example.com",  # type: ignore[typeddict-unknown-key]
                                                         "password": "correct-horse-battery"}})
    email: str = Field(min_length=1, max_length=auth.MAX_EMAIL_LENGTH)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class PasswordBody(ApiModel):
    model_config = ConfigDict(openapi_extra={"example": {  # type: ignore[typeddict-unknown-key]
        "current_password": "correct-horse-battery", "new_password": "staple-battery-horse"}})
    current_password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    new_password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)


class LoginUser(Out):
    id: str
    email: str
    role: str
    organization_id: str


class Token(Out):
    access_token: str
    token_type: str = Field(description="Always Bearer: send it as `Authorization: Bearer <token>`.")
    expires_in: int = Field(description="Seconds until the token expires.")
    user: LoginUser

    @classmethod
    def of(cls, result: auth.LoginResult) -> Token:
        return cls(access_token=result.token, token_type="Bearer",
                   expires_in=int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds()),
                   user=LoginUser(**result.user))


class SignedOut(Out):
    signed_out: bool


@operation("POST", "/auth/login", tag=TAG, permission=None, data=Token, errors=(401, *LIMITED))
def login(body: LoginBody) -> Response:
    """Sign in with an e-mail and password; the answer carries a bearer token.

    A wrong password and an unknown e-mail get the same 401 INVALID_CREDENTIALS. Five attempts a minute
    per user and per client address; past that a 429 with Retry-After (unknown users alike).
    """
    return ok(Token.of(auth.login(body.email, body.password)))


@operation("POST", "/auth/logout", tag=TAG, permission=SIGNED_IN, data=SignedOut)
def logout() -> Response:
    """Sign out: every session of the signed-in user ends (bearer tokens and browser cookies alike)."""
    auth.sign_out(auth.current_user_id())
    response = ok(SignedOut(signed_out=True))
    if get_jwt_request_location() == "cookies":
        unset_jwt_cookies(response)
    return response


@operation("POST", "/auth/password", tag=TAG, permission=SIGNED_IN, data=Token, errors=LIMITED)
def change_password(body: PasswordBody) -> Response:
    """Change the signed-in user's password; every earlier token of the user stops working.

    The answer carries a new token (and renews a browser session's cookie). A wrong current password is
    a 401 INVALID_CREDENTIALS and counts against the login limit.
    """
    result = auth.change_own_password(body.current_password, body.new_password)
    response = ok(Token.of(result))
    if get_jwt_request_location() == "cookies":
        set_access_cookies(response, result.token)
    return response
