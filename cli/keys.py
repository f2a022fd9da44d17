"""``netpulse secrets``: the keys of stored secrets (SNMP communities and passwords, webhook secrets,
Slack URLs), and re-encrypting everything under a new one."""

from __future__ import annotations

import click

from netpulse.config import get_settings


@click.group("secrets")
def secrets_group() -> None:
    """Encryption of stored secrets: make a key, re-encrypt under a new one.

    \b
    To rotate: put the new key in NETPULSE_ENCRYPTION_KEY and the old one (or the former
    NETPULSE_SECRET_KEY, if no ENCRYPTION_KEY was set) in NETPULSE_ENCRYPTION_KEY_OLD, restart the
    processes, run `netpulse secrets rotate`, then remove NETPULSE_ENCRYPTION_KEY_OLD.
    """


@secrets_group.command("new-key")
def new_key() -> None:
    """Print a new random key for NETPULSE_ENCRYPTION_KEY."""
    from netpulse.crypto import Keyring

    click.echo(Keyring.new_key())


@secrets_group.command()
def rotate() -> None:
    """Re-encrypt every stored secret with the current key (values already under it are skipped, so a
    second run, or one after an interruption, only finishes the job)."""
    from tqdm import tqdm

    from netpulse.db import connect
    from netpulse.rekey import rekey, secret_rows

    settings = get_settings()
    ring = settings.keyring()
    with connect(settings.require_database_url(), autocommit=True) as conn:
        with tqdm(total=secret_rows(conn), desc="re-encrypting", unit="row", leave=False) as bar:
            report = rekey(conn, ring, rotate=True, on_row=lambda: bar.update(1))
    parts = ", ".join(f"{table} {n}" for table, n in report.by_table.items())
    click.echo(f"re-encrypted {report.changed} of {report.rows} row(s) holding secrets ({parts}); "
               f"{report.rows - report.changed} already under the current key")


COMMANDS = [secrets_group]
