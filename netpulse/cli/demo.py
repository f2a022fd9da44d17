"""``netpulse demo``: the embedded default."""

from __future__ import annotations

COMMANDS: list = []
