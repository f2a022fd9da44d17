"""``POST /auth/login``: a bearer token for API clients (the browser signs in through ``/login``)."""

from __future__ import annotations

from flask import current_app
from flask_openapi3 import Tag
from pydantic import ConfigDict, Field
from werkzeug.wrappers import Response

from dashboard.api.params import ApiModel
from dashboard.api.routing import ok, operation, unit_of_work
from dashboard.api.schemas import Out
from dashboard.auth import issue_access_token
from netpulse.errors import InvalidCredentials
from netpulse.users import authenticate

TAG = Tag(name="auth", description="Tokens for API clients.")


class LoginBody(ApiModel):
    model_config = ConfigDict(openapi_extra={"example": {"email": "noc@example.com",  # type: ignore[typeddict-unknown-key]
                                                         "password": "correct-horse-battery"}})
    email: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


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


@operation("POST", "/auth/login", tag=TAG, permission=None, data=Token, errors=(401,))
def login(body: LoginBody) -> Response:
    """Sign in with an e-mail and password; the answer carries a bearer token.

    A wrong password and an unknown e-mail get the same 401 INVALID_CREDENTIALS.
    """
    with unit_of_work() as session:
        user = authenticate(session, body.email, body.password)
        if user is None:
            raise InvalidCredentials("Invalid email or password")
        token = Token(access_token=issue_access_token(user), token_type="Bearer",
                      expires_in=int(current_app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds()),
                      user=LoginUser(id=str(user.id), email=user.email, role=user.role,
                                     organization_id=str(user.organization_id)))
    return ok(token)
