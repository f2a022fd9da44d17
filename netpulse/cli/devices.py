"""``netpulse devices ...``"""

from __future__ import annotations

import click


@click.group()
def devices() -> None:
    """Manage the device inventory."""


COMMANDS = [devices]
