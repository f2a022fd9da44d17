"""``netpulse notebook``: JupyterLab on the notebooks, against the demo's database (or NETPULSE_DATABASE_URL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from netpulse.config import get_settings
from netpulse.errors import ConfigError


def _folder() -> Path:
    """The repository's notebooks/ when NetPulse runs from a checkout, else the current directory."""
    here = Path(__file__).resolve().parent.parent / "notebooks"
    return here if here.is_dir() else Path.cwd()


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The demo's data directory [default: NETPULSE_DATA_DIR or ~/.local/share/netpulse].")
@click.option("--port", type=click.IntRange(1, 65535), default=8888, show_default=True, help="JupyterLab's port.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
def notebook(data_dir: Path | None, port: int, no_browser: bool) -> None:
    """Start JupyterLab on the notebooks, with `from netpulse import data` pointed at the database.

    The database is NETPULSE_DATABASE_URL when set; else the demo's embedded PostgreSQL: the running
    one, or started here from the demo's data directory (and stopped with JupyterLab).
    """
    from cli.demo.embedded import EmbeddedStack
    from netpulse.data import demo_database_url

    settings = get_settings()
    url = settings.database_url
    where = data_dir or settings.data_dir
    if url is None:
        url = demo_database_url(where)
        if url is None and not (where / "pgdata").is_dir():
            raise ConfigError(f"no demo data in {where}: run `netpulse demo` once (or set NETPULSE_DATABASE_URL)")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        raise ConfigError("JupyterLab is not installed: pip install -e '.[notebooks]'") from None
    stack = None
    if url is None:  # a demo data dir whose PostgreSQL is not running: start it for the session
        click.echo(f"starting the demo's PostgreSQL from {where}")
        stack = EmbeddedStack.start(where)
        url = stack.database_url
    command = [sys.executable, "-m", "jupyterlab", "--notebook-dir", str(_folder()), f"--port={port}"]
    if no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    click.echo(f"JupyterLab on {_folder()} (port {port}); in a notebook: from netpulse import data; "
               "db = data.connect(). Ctrl-C stops it.")
    try:
        subprocess.call(command, env={**os.environ, "NETPULSE_DATABASE_URL": url})
    except KeyboardInterrupt:
        pass
    finally:
        if stack is not None:
            stack.stop()


COMMANDS = [notebook]
