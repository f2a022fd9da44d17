"""Production process commands: migrate, worker, scheduler, serve, maintain."""

from __future__ import annotations

import click

from netpulse.config import get_settings


@click.command()
@click.option("--storage", type=click.Choice(["auto", "postgres", "timescale"]), default="auto", show_default=True,
              help="Metrics storage variant for a new database; auto picks TimescaleDB when the extension "
                   "is available. An existing database keeps the variant it has.")
def migrate(storage: str) -> None:
    """Apply pending SQL migrations (idempotent)."""
    from netpulse.migrations import migrate as run

    settings = get_settings()
    variant, applied = run(settings.require_database_url(), requested=storage,
                           on_apply=lambda m: click.echo(f"applying {m.label} ({m.variant})"))
    click.echo(f"{len(applied)} migration(s) applied; storage variant: {variant}"
               if applied else f"database is up to date; storage variant: {variant}")


COMMANDS = [migrate]
