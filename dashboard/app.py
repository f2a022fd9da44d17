"""The web layer's composition root: a Flask server carrying JWT auth, the REST API and the Dash pages.

``create_app(settings)`` builds one complete app, so tests and the demo can build variants::

    app = create_app(load_settings(database_url=..., secret_key=...))
    app.run()  # or any WSGI server

Routes: ``/login`` and ``/logout`` (form login, cookies), ``/api/v1/...`` (JSON envelope, bearer or
cookie token; the OpenAPI document at ``/api/v1/openapi.json`` and its docs at ``/api/v1/docs``),
``/healthz`` (no auth), and Dash at ``/`` (pages from ``dashboard/pages``), all of it
behind the token guard of :mod:`dashboard.auth`.
"""

from __future__ import annotations

import time
from pathlib import Path

import dash
import dash_bootstrap_components as dbc
from dash import html
from flask import Flask, current_app, jsonify
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from dashboard import auth, ids
from dashboard.api import create_server, init_api
from netpulse.config import Settings, get_settings
from netpulse.db import make_engine, make_sessionmaker

__all__ = ["create_app"]

PACKAGE_DIR = Path(__file__).resolve().parent

# Bootstrap's dark colour mode for the whole page; Bootstrap itself is served from assets/ (no CDN:
# the embedded demo and the test machines have no internet, and a NOC screen should not depend on it).
INDEX_STRING = """<!DOCTYPE html>
<html lang="en" data-bs-theme="dark">
    <head>
        {%metas%}
        <title>{%title%}</title>
        {%favicon%}
        {%css%}
    </head>
    <body>
        {%app_entry%}
        <footer>
            {%config%}
            {%scripts%}
            {%renderer%}
        </footer>
    </body>
</html>"""


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> Flask:
    """Build the Flask server with JWT auth, ``/api/v1``, ``/healthz`` and the Dash pages mounted at ``/``.

    Needs ``settings.secret_key`` (signs the tokens; 16+ characters) and, unless ``engine`` is given,
    ``settings.database_url``; ``settings.env`` and ``settings.http_host`` decide whether cookies are
    marked Secure (production on a non-loopback address). A given ``engine`` stays the caller's to dispose.
    """
    if settings is None:
        settings = get_settings()
    settings.require_secret_key()  # fail before anything is built
    if engine is None:
        engine = make_engine(settings.require_database_url())

    server = create_server("dashboard")
    server.config.update(SECRET_KEY=settings.require_secret_key(), MAX_CONTENT_LENGTH=1 << 20)
    server.extensions["netpulse.settings"] = settings
    server.extensions["netpulse.engine"] = engine
    server.extensions["netpulse.sessionmaker"] = make_sessionmaker(engine)

    auth.configure_jwt(server, settings)
    server.register_blueprint(auth.bp)
    init_api(server)
    server.add_url_rule("/healthz", "healthz", healthz)

    dash_app = dash.Dash(
        "dashboard",
        server=server,  # type: ignore[arg-type]  # Dash's annotation omits Flask instances
        use_pages=True,
        pages_folder="pages",
        assets_folder=str(PACKAGE_DIR / "assets"),
        title="NetPulse",
        update_title=None,  # type: ignore[arg-type]  # None: no "Updating..." flicker in the tab title
        serve_locally=True,
        # Dash's callback POSTs carry the JWT cookie, so they must echo its CSRF value (double submit).
        csrf_token_name=auth.CSRF_COOKIE,
        csrf_header_name=auth.CSRF_HEADER,
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    dash_app.index_string = INDEX_STRING
    dash_app.layout = shell
    server.extensions["netpulse.dash"] = dash_app
    _finish_dash_setup(server)
    auth.install_guard(server)
    return server


def _finish_dash_setup(server: Flask) -> None:
    """Run Dash's first-request hooks now, while they are the only ones registered.

    Dash moves the callbacks that pages declare with ``@dash.callback`` (a process-wide registry,
    refilled each time an app imports its pages) into the app on its first request. Doing it here
    binds them to this app at once, so several apps built in one process (tests) each get theirs.
    """
    with server.test_request_context("/"):
        server.preprocess_request()


def shell() -> html.Div:
    """The app layout: navbar over the current page. Called per page load, so it knows the user."""
    email = str(auth.current_claims().get("email", ""))
    links = [dbc.NavItem(dbc.NavLink(page["name"], href=page["relative_path"], active="exact"))
             for page in dash.page_registry.values()]
    navbar = dbc.Navbar(
        dbc.Container(
            [
                html.A([html.Span(className="np-pulse"), "NetPulse"], href="/", className="navbar-brand np-brand"),
                dbc.Nav(links, navbar=True, className="me-auto"),
                html.Div(
                    [
                        html.Span([html.Span(className="np-live-dot"), "Live"], className="np-live"),
                        html.Span(email, id=ids.NAV_USER, className="np-user"),
                        # A plain link: /logout is a Flask route, not a Dash page.
                        html.A("Sign out", href="/logout", id=ids.NAV_LOGOUT,
                               className="btn btn-sm btn-outline-secondary"),
                    ],
                    className="d-flex align-items-center gap-3",
                ),
            ],
            fluid=True,
        ),
        dark=True,
        className="np-navbar",
    )
    return html.Div([navbar, dbc.Container(dash.page_container, fluid=True, className="np-main")])


def healthz() -> tuple[Response, int]:
    """Liveness and readiness in one: the database answers ``SELECT 1``. No auth; 503 when unhealthy."""
    engine: Engine = current_app.extensions["netpulse.engine"]
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        body = {"status": "unhealthy", "checks": {"database": {"status": "error", "error": reason}}}
        code = 503
    else:
        latency = round((time.perf_counter() - started) * 1000, 2)
        body = {"status": "healthy", "checks": {"database": {"status": "ok", "latency_ms": latency}}}
        code = 200
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, code
