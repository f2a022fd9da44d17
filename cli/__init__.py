"""The ``netpulse`` command: the composition root, on top of every layer.

Commands import the layers they wire lazily, so ``netpulse --help`` starts fast. The demo's tooling
(embedded PostgreSQL and Redis, a private snmpd, the notification sink) lives beside it in ``cli.demo``.
"""

from __future__ import annotations

import sys

import click

from netpulse.errors import NetPulseError


class NetPulseGroup(click.Group):
    """Turns NetPulse errors into one clear line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> object:
        from sqlalchemy.exc import StatementError

        try:
            return super().invoke(ctx)
        except NetPulseError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            sys.exit(1)
        except StatementError as exc:  # e.g. an encrypted column without a key: the error inside says it
            if not isinstance(exc.orig, NetPulseError):
                raise
            click.echo(f"Error: {exc.orig.message}", err=True)
            sys.exit(1)


@click.group(cls=NetPulseGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netpulse")
def main() -> None:
    """NetPulse: network monitoring and time-series analytics for NOC teams.

    Production reads NETPULSE_DATABASE_URL and NETPULSE_REDIS_URL; `netpulse demo` needs neither.
    """
    from cli._common import state_cache_client
    from netpulse import crypto
    from netpulse.config import get_settings
    from netpulse.logs import configure
    from netpulse.tokens import use_state_cache
    from netpulse.users import configure_hasher

    # One-shot commands keep quiet unless NETPULSE_LOG_LEVEL asks otherwise; the long-running
    # processes (serve, worker, scheduler, demo) default to info (cli.ops.configure_logging).
    settings = get_settings()
    configure(settings.log_level or "warning", settings.log_format)
    # Stored secrets are decrypted with the settings' keys, built on first use (most commands need none).
    crypto.use_keyring(lambda: get_settings().keyring())
    # A user changed by a command drops the web servers' cached state of that user (sessions end at once).
    use_state_cache(state_cache_client)
    configure_hasher(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib,
                     parallelism=settings.argon2_parallelism)


def _register() -> None:
    from cli import devices, keys, notebook, notify, ops, report, rules, sla, snmp, users
    from cli.demo import command as demo

    for module in (ops, users, devices, snmp, notify, rules, sla, report, notebook, keys, demo):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
