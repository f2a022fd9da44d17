"""The README's "Production install", run as written: its commands are read from the README (so the
document and this test cannot drift) and run as subprocesses against a new database on the machine's
PostgreSQL and the test Redis database. Prompts are answered on a real terminal; then a browser's
sign-in (the /login form with its CSRF cookie) and a probed device with metric rows and a status.

Only the values of the three exported settings differ from the README's placeholders, plus three
settings the README leaves at their defaults: a free HTTP port, a 2 s probe interval (so the test
does not wait two minutes) and no .env file.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import psycopg
import pytest
import requests

from tests.conftest import CI
from tests.terminal import run_in_terminal, typist

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parent.parent / "README.md"
SERVICES = ("worker", "scheduler", "serve")
SETTINGS = ("NETPULSE_DATABASE_URL", "NETPULSE_REDIS_URL", "NETPULSE_SECRET_KEY")
ADMIN_PASSWORD = "install-" + "correct-horse"
SNMP_PASSWORDS = {"Auth password": "authpass123", "Privacy password": "privpass123"}


def readme_commands() -> list[str]:
    """The shell commands of the README's "Production install" section, in order (continuation lines
    joined)."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Production install\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, "README.md has no '## Production install' section"
    commands: list[str] = []
    for block in re.findall(r"^```sh\n(.*?)^```", section.group(1), re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line.strip())
    return commands


def _service(command: str) -> str | None:
    words = shlex.split(command, comments=True)
    return words[1] if len(words) == 2 and words[0] == "netpulse" and words[1] in SERVICES else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _icmp_permitted() -> bool:
    from ingest.icmp import icmp_permitted

    return icmp_permitted(True) or icmp_permitted(False)


def _wait(what: str, check: object, timeout_s: float, logs: dict[str, Path]) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            shown = "\n".join(f"--- {name} ---\n{path.read_text(errors='replace')[-3000:]}"
                              for name, path in logs.items())
            raise AssertionError(f"{what} within {timeout_s:.0f} s\n{shown}")
        time.sleep(0.5)


def test_readme_commands_are_what_the_test_runs() -> None:
    commands = readme_commands()
    assert [c.split("=")[0] for c in commands if c.startswith("export ")] == [f"export {s}" for s in SETTINGS]
    assert [s for c in commands if (s := _service(c))] == list(SERVICES)
    assert not any(re.search(r"\b(psql|SELECT|INSERT|UPDATE)\b", c) for c in commands), "the install needs no SQL"


def test_production_install_from_the_readme(empty_db_url: str, redis_url: str, tmp_path: Path) -> None:
    if not _icmp_permitted():
        if CI:
            raise RuntimeError("ICMP sockets are needed in CI (run as root)")
        pytest.skip("this user may not open ICMP sockets (needs root or CAP_NET_RAW)")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETPULSE_")}
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                "NETPULSE_DATABASE_URL": empty_db_url, "NETPULSE_REDIS_URL": redis_url,
                "NETPULSE_SECRET_KEY": secrets.token_hex(32), "NETPULSE_HTTP_PORT": str(port),
                "NETPULSE_PROBE_INTERVAL_S": "2", "NETPULSE_ENV_FILE": os.devnull, "PYTHONUNBUFFERED": "1"})
    answers = typist({"Password": ADMIN_PASSWORD, **SNMP_PASSWORDS})
    commands = [c for c in readme_commands() if not c.startswith("export ")]
    (admin_email,) = [shlex.split(c)[3] for c in commands if c.startswith("netpulse users add ")]
    started: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}
    handles: list[IO[bytes]] = []
    after_services: list[str] = []
    try:
        for command in commands:
            name = _service(command)
            if name is not None:
                logs[name] = tmp_path / f"{name}.log"
                handles.append(open(logs[name], "wb"))  # noqa: SIM115 - closed in finally
                started[name] = subprocess.Popen(["bash", "-c", command], env=env, cwd=tmp_path,
                                                 stdout=handles[-1], stderr=subprocess.STDOUT,
                                                 start_new_session=True)
            elif started:
                after_services.append(command)
            else:
                code, out = run_in_terminal(["bash", "-c", command], answers, env, cwd=str(tmp_path))
                assert code == 0 and "Error" not in out, f"{command}\n{out}"

        # A browser's sign-in: the form with its CSRF cookie, then the dashboard behind it.
        base = f"http://127.0.0.1:{port}"
        browser = requests.Session()

        def login_page_answers() -> bool:
            try:
                return browser.get(f"{base}/login", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        _wait("serve did not answer", login_page_answers, 60, logs)
        form = browser.get(f"{base}/login", timeout=5)
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token, form.text
        signed_in = browser.post(f"{base}/login", data={"email": admin_email, "password": ADMIN_PASSWORD,
                                                        "csrf_token": token.group(1), "next": "/"},
                                 allow_redirects=False, timeout=10)
        assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/", signed_in.text
        assert "netpulse_access" in browser.cookies
        page = browser.get(f"{base}/", timeout=10)
        assert page.status_code == 200 and page.url == f"{base}/" and "_dash-config" in page.text

        # The device is probed: metric rows and a status, written by the worker the scheduler drives.
        with psycopg.connect(empty_db_url, autocommit=True) as conn:
            def probed() -> bool:
                row = conn.execute("SELECT d.oper_status, (SELECT count(*) FROM metrics m WHERE m.device_id = d.id) "
                                   "FROM devices d WHERE d.address = '127.0.0.1'").fetchone()
                return row is not None and row[0] == "up" and row[1] > 0

            _wait("the device was not probed up", probed, 60, logs)
        for command in after_services:
            code, out = run_in_terminal(["bash", "-c", command], answers, env, cwd=str(tmp_path))
            assert code == 0 and "Error" not in out, f"{command}\n{out}"
            if command.startswith("netpulse devices list"):
                row = next(line.split() for line in out.splitlines() if "127.0.0.1" in line)
                assert row[-2:] == ["up", "-"], out  # OPER, TAGS
        for name, proc in started.items():
            assert proc.poll() is None, f"{name} exited early:\n{logs[name].read_text(errors='replace')}"
    finally:
        for proc in started.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in started.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            try:  # anything the process left in its group
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for handle in handles:
            handle.close()
