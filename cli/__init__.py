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
        try:
            return super().invoke(ctx)
        except NetPulseError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            sys.exit(1)


@click.group(cls=NetPulseGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netpulse")
def main() -> None:
    """NetPulse: network monitoring and time-series analytics for NOC teams.

    Production reads NETPULSE_DATABASE_URL and NETPULSE_REDIS_URL; `netpulse demo` needs neither.
    """
    from netpulse.logs import configure

    configure("warning")


def _register() -> None:
    from cli import devices, notify, ops, rules, sla, snmp, users
    from cli.demo import command as demo

    for module in (ops, users, devices, snmp, notify, rules, sla, demo):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
