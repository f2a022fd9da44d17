"""Logging: NETPULSE_LOG_LEVEL and NETPULSE_LOG_FORMAT reach every process, and a failing request's log
is a short plain traceback with no request body, no local variables and no password."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from flask import Flask, request
from sqlalchemy import Engine

from cli import main
from dashboard.app import create_app
from netpulse import logs
from netpulse.config import get_settings, load_settings
from netpulse.db import make_sessionmaker
from netpulse.schema import Role
from netpulse.users import create_organization, create_user
from tests.conftest import REDIS_URL

SECRET = "test-secret-key-0123456789abcdef"
PASSWORD = "Tr0ub4dor-never-in-a-log"


@pytest.fixture
def app(db_url: str, engine: Engine, db: psycopg.Connection) -> Iterator[Flask]:
    logs.configure("info", "json")
    app = create_app(load_settings(database_url=db_url,
                                    redis_url=REDIS_URL, secret_key=SECRET, env="testing"), engine=engine)

    @app.post("/api/v1/test-crash")
    def crash() -> str:
        body = request.get_json()
        password = body["password"]   # a local that a traceback with locals would print
        raise RuntimeError(f"crashed after reading {len(password)} characters")

    yield app
    logs.configure("warning")


def _json_lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_a_failing_request_logs_a_short_plain_traceback_without_body_or_locals(
        app: Flask, engine: Engine, capfd: pytest.CaptureFixture[str]) -> None:
    with make_sessionmaker(engine)() as session, session.begin():
        org = create_organization(session, "Acme", "acme")
        create_user(session, org.id, "noc@acme.test", PASSWORD, role=Role.OPERATOR)
    http = app.test_client()
    logs.configure("info", "json")   # now: its handler writes to the stderr that capfd reads
    capfd.readouterr()
    r = http.post("/api/v1/test-crash", json={"email": "noc@acme.test", "password": PASSWORD})
    assert r.status_code == 500
    # The hostile requests that once printed a password: a NUL byte in the login e-mail, in a search.
    http.post("/api/v1/auth/login", json={"email": "noc\u0000@acme.test", "password": PASSWORD})
    token = http.post("/api/v1/auth/login", json={"email": "noc@acme.test", "password": PASSWORD}
                      ).get_json()["data"]["access_token"]
    http.get("/api/v1/devices?search=a%00b", headers={"Authorization": f"Bearer {token}"})
    err = capfd.readouterr().err
    events = _json_lines(err)   # every line is one JSON object
    crash = [e for e in events if "test-crash" in json.dumps(e)]
    assert crash and "Traceback (most recent call last)" in str(crash[0]["exception"])
    assert "RuntimeError: crashed after reading" in str(crash[0]["exception"])
    assert PASSWORD not in err
    # No bound SQL values either: the search text of the failing query stays out of the log.
    for marker in ("locals", "password =", "body =", "'password'", '"password"', "%a\\u0000b%", "'%a"):
        assert marker not in err, marker
    assert len(err) < 30_000, f"{len(err)} characters of log for three bad requests"


def test_the_cli_honours_the_log_level(settings_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for env, expected in ((None, logging.WARNING), ("debug", logging.DEBUG), ("error", logging.ERROR)):
        if env is None:
            monkeypatch.delenv("NETPULSE_LOG_LEVEL", raising=False)
        else:
            monkeypatch.setenv("NETPULSE_LOG_LEVEL", env)
        get_settings.cache_clear()
        result = CliRunner().invoke(main, ["devices", "list"])
        assert result.exit_code != 2, result.output
        assert logging.getLogger().level == expected
    monkeypatch.setenv("NETPULSE_LOG_LEVEL", "loud")
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["devices", "list"])
    assert result.exit_code == 1 and "NETPULSE_LOG_LEVEL='loud' is invalid" in result.output


def test_the_worker_process_logs_json_at_the_configured_level(db_url: str, redis_url: str, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "netpulse"
    env = {**os.environ, "NETPULSE_DATABASE_URL": db_url, "NETPULSE_REDIS_URL": redis_url,
           "NETPULSE_LOG_LEVEL": "debug", "NETPULSE_LOG_FORMAT": "json", "NETPULSE_ENV_FILE": str(tmp_path / "none")}
    with open(tmp_path / "stderr", "w+") as stderr:
        proc = subprocess.Popen([str(exe), "worker", "--threads", "1"], stdout=subprocess.PIPE, stderr=stderr,
                                text=True, env=env)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert "worker running" in first, first
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                stderr.seek(0)
                raise AssertionError(stderr.read()[-3000:]) from None
            assert code == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr.seek(0)
        events = _json_lines(stderr.read())
    assert any(e["level"] == "debug" and str(e.get("logger", "")).startswith("dramatiq") for e in events), events
    assert all({"event", "level", "timestamp"} <= set(e) for e in events)


def test_access_lines_of_the_development_server_follow_the_configured_level(
        capfd: pytest.CaptureFixture[str]) -> None:
    """werkzeug promotes a NOTSET logger to INFO on its first request: at the default warning level
    the demo's console would then print a line for every Dash callback."""
    from werkzeug.serving import WSGIRequestHandler

    class Line(WSGIRequestHandler):
        def __init__(self) -> None:  # a handler with no socket: only its logging is used
            self.client_address = ("127.0.0.1", 1)
            self.requestline = "POST /_dash-update-component HTTP/1.1"

    try:
        logs.configure("warning", "json")
        capfd.readouterr()
        Line().log_request(200)
        assert "_dash-update-component" not in capfd.readouterr().err
        logs.configure("info", "json")
        Line().log_request(200)
        assert "_dash-update-component" in capfd.readouterr().err
    finally:
        logs.configure("warning")
