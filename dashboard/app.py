"""The web layer's composition root: a Flask server carrying JWT auth, the REST API and the Dash pages.

``create_app(settings)`` builds one complete app, so tests and the demo can build variants::

    app = create_app(load_settings(database_url=..., secret_key=...))
    app.run()  # or any WSGI server

Routes: ``/login`` and ``/logout`` (form login, cookies), ``/api/v1/...`` (JSON envelope, bearer or
cookie token; the OpenAPI document at ``/api/v1/openapi.json`` and its docs at ``/api/v1/docs``),
``/alive``, ``/ready``, ``/health``, ``/healthz`` (:mod:`dashboard.health`) and ``/metrics``
(:mod:`dashboard.metrics`) without a login, and Dash at ``/`` (pages from ``dashboard/pages``), all of
it behind the token guard of :mod:`dashboard.auth` and the headers of :mod:`dashboard.security`. Redis
holds the login limits, the cache of users' current state and the workers' counters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dash
import redis
import structlog
from flask import Flask, request
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from werkzeug.wrappers import Response

from dashboard import auth, envelope, shell
from dashboard.api import create_server, init_api
from dashboard.dash_requests import guard_dash_endpoints
from dashboard.health import install_health
from dashboard.metrics import QueueDepths, install_metrics
from dashboard.security import content_security_policy, install_security
from netpulse import logs
from netpulse.config import Settings, get_settings
from netpulse.db import make_engine, make_sessionmaker
from netpulse.health import Check, database_check, migrations_check, redis_check
from netpulse.users import configure_hasher

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


log = structlog.get_logger("netpulse.dashboard.app")

# Redis answers in microseconds; a request must not hang for long on one that went away.
REDIS_TIMEOUT_S = 1.0


def create_app(settings: Settings | None = None, *, engine: Engine | None = None, redis_client: Any = None,
               queue_depths: QueueDepths | None = None, checks: Sequence[Check] = (),
               send_report: Callable[[int], None] | None = None) -> Flask:
    """Build the Flask server with JWT auth, ``/api/v1``, the health and metrics endpoints and the Dash
    pages mounted at ``/``.

    Needs ``settings.secret_key`` (signs the tokens), ``settings.redis_url`` unless ``redis_client``
    is given, and ``settings.database_url`` unless ``engine`` is given (both stay the caller's to
    close). ``settings.proxy_hops`` and ``cookie_secure`` decide the Secure cookie flag per request.
    Redis is checked by /health and holds the workers' counters for /metrics; ``queue_depths`` reads
    the work queues (the composition root builds it from the broker); ``checks`` are added to /health
    (and /ready when marked so). ``send_report`` hands a report run asked for through the API to the
    workers (``workers.client.report_sender``); without it the scheduler hands such runs out.
    """
    if settings is None:
        settings = get_settings()
    settings.require_secret_key()  # fail before anything is built
    if not structlog.is_configured():
        # Embedded in another server: never structlog's default renderer (tracebacks with locals).
        logs.configure(settings.log_level or "info", settings.log_format)
    if redis_client is None:
        # No retries with backoff (redis-py's default waits seconds): a request falls back or answers 503 now.
        redis_client = redis.Redis.from_url(settings.require_redis_url(), socket_timeout=REDIS_TIMEOUT_S,
                                            socket_connect_timeout=REDIS_TIMEOUT_S, retry=Retry(NoBackoff(), 0))
    if engine is None:
        engine = make_engine(settings.require_database_url())
    event.listen(engine, "connect", _serial_queries)
    configure_hasher(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib,
                     parallelism=settings.argon2_parallelism)

    server = create_server("dashboard")
    # First: the request timer must start before any other hook (the login guard) may answer.
    install_metrics(server, engine=engine, redis=redis_client, queue_depths=queue_depths, token=settings.metrics_token)
    server.config.update(SECRET_KEY=settings.require_secret_key(), MAX_CONTENT_LENGTH=1 << 20)
    server.extensions["netpulse.settings"] = settings
    server.extensions["netpulse.engine"] = engine
    server.extensions["netpulse.sessionmaker"] = make_sessionmaker(engine)
    server.extensions["netpulse.send_report"] = send_report

    auth.configure_jwt(server, settings, redis_client)
    server.register_blueprint(auth.bp)
    init_api(server)
    install_health(server, [database_check(engine), redis_check(redis_client), migrations_check(engine), *checks])
    server.register_error_handler(OperationalError, _database_unavailable)
    server.register_error_handler(SATimeoutError, _database_unavailable)

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
        # Pages show controls by role (no acknowledge button for a viewer): callbacks address components
        # that a given layout may not hold.
        suppress_callback_exceptions=True,
    )
    dash_app.index_string = INDEX_STRING
    dash_app.layout = shell.layout
    shell.register(dash_app)
    server.extensions["netpulse.dash"] = dash_app
    _finish_dash_setup(server)
    install_security(server, settings, content_security_policy(dash_app.csp_hashes()))
    auth.install_guard(server)
    guard_dash_endpoints(server, dash_app)
    return server


def _serial_queries(dbapi_connection: Any, _record: Any) -> None:
    """The pages' queries are many and small: starting parallel workers for them, or JIT-compiling them
    (the rollup views' estimates pass the JIT threshold), costs more than it saves (hundreds of ms on
    a busy 2-core host), so the web's connections plan serially and without JIT."""
    with dbapi_connection.cursor() as cur:
        cur.execute("SET max_parallel_workers_per_gather = 0")
        cur.execute("SET jit = off")
    dbapi_connection.commit()


def _database_unavailable(exc: Exception) -> Response | tuple[str, int, dict[str, str]]:
    """The database does not answer: 503 and a hint to retry, never a 500 with a traceback."""
    log.error("netpulse.dashboard.database_unavailable", path=request.path, error=type(exc).__name__)
    headers = {"Retry-After": str(auth.UNAVAILABLE_RETRY_S)}
    if request.method == "GET" and not request.path.startswith(("/_dash-", auth.API_PREFIX)):
        return "The database does not answer: try again shortly.", 503, headers
    response = envelope.failure("SERVICE_UNAVAILABLE", "The database does not answer: try again shortly", 503)
    response.headers.update(headers)
    return response


def _finish_dash_setup(server: Flask) -> None:
    """Run Dash's first-request hooks now, while they are the only ones registered.

    Dash moves the callbacks that pages declare with ``@dash.callback`` (a process-wide registry,
    refilled each time an app imports its pages) into the app on its first request. Doing it here
    binds them to this app at once, so several apps built in one process (tests) each get theirs.
    """
    with server.test_request_context("/"):
        server.preprocess_request()


