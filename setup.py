"""Packaging hook (the metadata is in pyproject.toml): the SQL migrations ship inside the wheel.

``sql/`` at the top of the source tree is the schema of record; a wheel carries a copy of it as
``netpulse/sql/``, where :mod:`netpulse.migrations` looks first. An editable install reads the
source tree's ``sql/`` directly, so nothing is copied then.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SQL = Path(__file__).resolve().parent / "sql"


class BuildPyWithMigrations(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "netpulse" / "sql"
        for path in sorted(SQL.rglob("*.sql")):
            dest = target / path.relative_to(SQL)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)


setup(cmdclass={"build_py": BuildPyWithMigrations})
