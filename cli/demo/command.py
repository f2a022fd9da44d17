"""``netpulse demo``: the embedded default."""

from __future__ import annotations

from pathlib import Path

import click

from netpulse.config import default_data_dir


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the embedded PostgreSQL and Redis keep their data [default: NETPULSE_DATA_DIR or "
                   "~/.local/share/netpulse]. A second run reuses it.")
@click.option("--port", type=click.IntRange(1, 65535), default=8050, show_default=True, help="Dashboard port.")
@click.option("--devices", type=click.IntRange(1, 100_000), default=200, show_default=True,
              help="Simulated devices.")
@click.option("--sites", type=click.IntRange(1, 12), default=3, show_default=True, help="Simulated sites.")
@click.option("--history-days", type=click.FloatRange(0, 90), default=7.0, show_default=True,
              help="Days of history to backfill on first run.")
@click.option("--interval", "interval_s", type=click.IntRange(1, 3600), default=10, show_default=True,
              help="Probe interval in seconds.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the simulated network.")
def demo(data_dir: Path | None, port: int, devices: int, sites: int, history_days: float, interval_s: int,
         seed: int) -> None:
    """Run NetPulse on the embedded stack: no servers to install.

    Starts PostgreSQL and Redis from their wheels, a simulated network plus real probes of this
    machine, backfills history, runs workers and the scheduler in-process and serves the dashboard.
    """
    from cli.demo.run import DemoOptions, run_demo
    from netpulse.config import get_settings

    if data_dir is None:
        settings = get_settings()
        data_dir = settings.data_dir if settings.data_dir else default_data_dir()
    run_demo(DemoOptions(data_dir=data_dir, port=port, devices=devices, sites=sites, history_days=history_days,
                         interval_s=interval_s, seed=seed))


COMMANDS = [demo]
