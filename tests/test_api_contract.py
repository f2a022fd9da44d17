"""The API as its OpenAPI document declares it, walked operation by operation.

Every test here is generated from ``/api/v1/openapi.json``, so a new route is covered by construction:
the document is valid OpenAPI 3.1; every operation answers 401 without a token, with a tampered, an
expired or a revoked token (a disabled user's), 403 to a role that lacks its permission, 404 on another
organization's objects (writing nothing there), and 422 naming an unknown query parameter, with the
request id echoed. The resource tests (``test_api_resources.py``) check what the answers hold.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from dashboard.auth import role_allows
from netpulse.schema import Role
from tests.apiworld import World, bearer, module_world, row_counts, served_document

META_KEYS = {"timestamp", "version", "request_id"}
PUBLIC = {"login"}  # operations that need no token
SIGNED_IN = {"logout", "change_password"}  # operations on the caller's own session: any role, no permission


DOC = served_document()
OPERATIONS = [(method.upper(), path, op) for path, item in DOC["paths"].items() for method, op in item.items()]
GUARDED = [o for o in OPERATIONS if o[2]["operationId"] not in PUBLIC]


def _id(o: tuple[str, str, dict[str, Any]]) -> str:
    return f"{o[0]} {o[1].removeprefix('/api/v1')}"


world = pytest.fixture(scope="module", name="world")(module_world)


@pytest.fixture
def client(world: World) -> FlaskClient:
    return world.app.test_client()


def _request(client: FlaskClient, method: str, path: str, op: dict[str, Any], *, values: dict[str, str] | None = None,
             headers: dict[str, str] | None = None, query: dict[str, Any] | None = None, body: bool = True) -> Any:
    """Call ``op`` with its path parameters from ``values``, its required query parameters and (with
    ``body``) a body from the document's examples."""
    params = dict(query or {})
    url = path
    for p in op.get("parameters", []):
        if p["in"] == "path":
            url = url.replace("{" + p["name"] + "}", (values or {}).get(p["name"], "1"))
        elif p["in"] == "query" and p.get("required"):
            example = p.get("example", p["schema"].get("example"))
            assert example is not None, f"{_id((method, path, op))}: give required parameter {p['name']} an example"
            params.setdefault(p["name"], example)
    kwargs: dict[str, Any] = {"headers": headers or {}, "query_string": params}
    content = op.get("requestBody", {}).get("content", {}) if body else {}
    if "application/json" in content:
        example = content["application/json"].get("example")
        assert example is not None, f"{_id((method, path, op))}: give the body model an example (openapi_extra)"
        kwargs["json"] = example
    elif "multipart/form-data" in content:
        kwargs["data"] = {"file": (io.BytesIO(b"name,address,type\nx-1,192.0.2.1,router\n"), "devices.csv")}
        kwargs["content_type"] = "multipart/form-data"
    return client.open(url, method=method, **kwargs)


def _nowhere(op: dict[str, Any]) -> dict[str, str]:
    """Path values that name nothing, for requests that must be refused before any lookup (a guard that
    failed would then answer 404, not act on a real object)."""
    values = {}
    for p in op.get("parameters", []):
        if p["in"] == "path":
            schema = p["schema"]
            values[p["name"]] = ("2147483647" if schema.get("type") == "integer" else
                                 str(uuid.UUID(int=0)) if schema.get("format") == "uuid" else "nothing-here")
    return values


def _error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, f"{r.status_code}: {r.get_data(as_text=True)[:400]}"
    body = r.get_json()
    assert body["success"] is False and "data" not in body
    assert set(body["error"]) == {"code", "message", "details"} and body["error"]["message"]
    assert set(body["meta"]) == META_KEYS and r.headers["X-Request-ID"] == body["meta"]["request_id"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return dict(body)


# --- the document -----------------------------------------------------------------------------------

def test_the_served_document_is_valid_openapi_3_1(client: FlaskClient) -> None:
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    doc = r.get_json()
    validate(doc)  # openapi-spec-validator: raises on any violation of the 3.1 schema
    assert doc["openapi"] == "3.1.0" and doc == DOC
    ids = [op["operationId"] for _, _, op in OPERATIONS]
    assert len(ids) == len(set(ids)) and len(ids) >= 60
    for method, path, op in OPERATIONS:
        assert "422" in op["responses"], _id((method, path, op))
        if op["operationId"] in PUBLIC:
            assert "security" not in op
        elif op["operationId"] in SIGNED_IN:
            assert op["security"] == [{"bearerAuth": []}, {"cookieAuth": []}] and "x-permission" not in op
            assert "401" in op["responses"] and "403" not in op["responses"]
        else:
            assert op["security"] == [{"bearerAuth": []}, {"cookieAuth": []}] and op["x-permission"]
            assert {"401", "403"} <= set(op["responses"])
        if "{" in path:
            assert "404" in op["responses"], _id((method, path, op))


def test_interactive_docs_are_served_locally(client: FlaskClient) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "SwaggerUIBundle" in html and "openapi.json" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the docs page must load nothing from outside"
    for asset in re.findall(r"""(?:src|href)="(swagger/[^"]+)\"""", html):
        assert client.get(f"/api/v1/{asset}").status_code == 200, asset
    # The app's Content-Security-Policy holds here too: the page's one inline script is allowed by its hash.
    inline = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    script_src = re.search(r"script-src ([^;]+)", page.headers["Content-Security-Policy"])
    assert script_src is not None and "'unsafe-inline'" not in script_src.group(1) and len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in script_src.group(1).split()


# --- authentication and authorization, per operation ------------------------------------------------

@pytest.mark.parametrize(("method", "path", "op"), GUARDED, ids=[_id(o) for o in GUARDED])
def test_every_operation_needs_a_token(client: FlaskClient, method: str, path: str, op: dict[str, Any]) -> None:
    _error(_request(client, method, path, op, body=False), 401, "AUTHENTICATION_REQUIRED")


@pytest.mark.parametrize(("method", "path", "op"), GUARDED, ids=[_id(o) for o in GUARDED])
@pytest.mark.parametrize("case", ["tampered", "expired", "revoked"])
def test_a_bad_token_is_401(world: World, db_url: str, client: FlaskClient, case: str, method: str, path: str,
                            op: dict[str, Any]) -> None:
    token = {"tampered": world.tampered, "expired": world.expired, "revoked": world.revoked}[case]
    before = row_counts(db_url)
    _error(_request(client, method, path, op, values=_nowhere(op), headers=bearer(token), body=False), 401)
    assert row_counts(db_url) == before


def _wrong_role(permission: str) -> str | None:
    """The least privileged role that lacks ``permission`` (None when every role holds it)."""
    return next((r.value for r in (Role.API_USER, Role.VIEWER, Role.OPERATOR) if not role_allows(r.value, permission)),
                None)


PERMITTED = [o for o in GUARDED if o[2]["operationId"] not in SIGNED_IN]
FORBIDDEN = [o for o in PERMITTED if _wrong_role(o[2]["x-permission"]) is not None]


def test_only_permissions_every_role_holds_have_no_wrong_role() -> None:
    universal = {o[2]["x-permission"] for o in PERMITTED} - {o[2]["x-permission"] for o in FORBIDDEN}
    assert universal == {"device:read", "metrics:read"}
    assert all(role_allows(r.value, p) for r in Role for p in universal)


@pytest.mark.parametrize(("method", "path", "op"), FORBIDDEN, ids=[_id(o) for o in FORBIDDEN])
def test_a_role_without_the_permission_is_403(world: World, db_url: str, client: FlaskClient, method: str, path: str,
                                              op: dict[str, Any]) -> None:
    role = _wrong_role(op["x-permission"])
    assert role is not None
    before = row_counts(db_url)
    body = _error(_request(client, method, path, op, values=_nowhere(op), headers=bearer(world.alpha.tokens[role]),
                           body=False), 403, "INSUFFICIENT_PERMISSIONS")
    assert body["error"]["details"] == {"required": op["x-permission"], "role": role}
    assert row_counts(db_url) == before


ADDRESSED = [o for o in GUARDED if "{" in o[1]]


@pytest.mark.parametrize(("method", "path", "op"), ADDRESSED, ids=[_id(o) for o in ADDRESSED])
def test_another_organizations_object_is_not_found(world: World, db_url: str, client: FlaskClient, method: str,
                                                   path: str, op: dict[str, Any]) -> None:
    names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
    assert names <= set(world.bravo.path), f"add an object for {names - set(world.bravo.path)} to tests/apiworld.py"
    before = row_counts(db_url, world.bravo.org)
    r = _request(client, method, path, op, values=world.bravo.path, headers=bearer(world.alpha.tokens["admin"]))
    _error(r, 404)
    assert row_counts(db_url, world.bravo.org) == before
    if method == "GET":  # the same read of alpha's own object is found: the 404 above came from tenancy
        mine = _request(client, method, path, op, values=world.alpha.path, headers=bearer(world.alpha.tokens["admin"]))
        assert mine.status_code == 200, mine.get_data(as_text=True)[:300]


# --- the conventions, per operation -----------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "op"), GUARDED, ids=[_id(o) for o in GUARDED])
def test_an_unknown_query_parameter_is_422_naming_the_allowed_ones(world: World, client: FlaskClient, method: str,
                                                                   path: str, op: dict[str, Any]) -> None:
    allowed = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
    r = _request(client, method, path, op, values=world.alpha.path, query={"bogus": "1"},
                 headers={**bearer(world.alpha.tokens["admin"]), "X-Request-ID": "contract-7"})
    body = _error(r, 422, "INVALID_INPUT")
    assert list(body["error"]["details"]) == ["bogus"]
    assert body["error"]["details"]["bogus"].endswith("allowed: " + (", ".join(allowed) or "none"))
    assert body["meta"]["request_id"] == "contract-7"


PAGED = [o for o in GUARDED if any(p["name"] == "per_page" for p in o[2].get("parameters", []))]


@pytest.mark.parametrize(("method", "path", "op"), PAGED, ids=[_id(o) for o in PAGED])
def test_per_page_beyond_the_maximum_is_422_not_a_silent_cap(world: World, client: FlaskClient, method: str,
                                                             path: str, op: dict[str, Any]) -> None:
    schema = next(p["schema"] for p in op["parameters"] if p["name"] == "per_page")
    admin = bearer(world.alpha.tokens["admin"])
    body = _error(_request(client, method, path, op, values=world.alpha.path, headers=admin,
                           query={"per_page": schema["maximum"] + 1}), 422, "INVALID_INPUT")
    assert list(body["error"]["details"]) == ["per_page"]
    r = _request(client, method, path, op, values=world.alpha.path, headers=admin, query={"per_page": 1, "page": 1})
    assert r.status_code in (200, 422), r.get_data(as_text=True)[:300]  # 422: a backtest of a status rule
    if r.status_code == 200 and r.mimetype == "application/json":
        page = r.get_json()["pagination"]
        assert page["per_page"] == 1 and page["total"] >= 0 and page["total_pages"] == page["total"]


def test_the_public_operations_are_only_the_login(world: World) -> None:
    assert {o[2]["operationId"] for o in OPERATIONS} - {o[2]["operationId"] for o in GUARDED} == PUBLIC



BODIED = [o for o in GUARDED if "application/json" in o[2].get("requestBody", {}).get("content", {})]
BAD_BODIES = {"nested": ("[" * 100_000 + "]" * 100_000, "not valid JSON"), "truncated": ('{"a": ', "not valid JSON"),
              "array": ("[1, 2]", "expected a JSON object"), "string": ('"text"', "expected a JSON object"),
              "number": ("7", "expected a JSON object")}


@pytest.mark.parametrize(("method", "path", "op"), BODIED, ids=[_id(o) for o in BODIED])
@pytest.mark.parametrize("kind", list(BAD_BODIES))
def test_a_body_that_is_not_a_json_object_is_422_and_writes_nothing(world: World, db_url: str, client: FlaskClient,
                                                                    kind: str, method: str, path: str,
                                                                    op: dict[str, Any]) -> None:
    data, message = BAD_BODIES[kind]
    url = path
    for p in op.get("parameters", []):
        if p["in"] == "path":
            url = url.replace("{" + p["name"] + "}", world.alpha.path[p["name"]])
    before = row_counts(db_url)
    r = client.open(url, method=method, data=data, content_type="application/json",
                    headers=bearer(world.alpha.tokens["admin"]))
    body = _error(r, 422, "INVALID_INPUT")
    assert body["error"]["details"] == {"body": message}
    assert row_counts(db_url) == before
