"""Secrets as people may see them: masked, never echoed in full by the CLI or the API.

>>> mask("public")
'pu****'
>>> mask("ab")
'****'
>>> mask(None)
'-'
"""

from __future__ import annotations

__all__ = ["mask"]


def mask(secret: str | None, *, shown: int = 2) -> str:
    """The first ``shown`` characters and four stars (all stars when the secret is short); ``-`` for none."""
    if secret is None or secret == "":
        return "-"
    return (secret[:shown] if len(secret) > 2 * shown else "") + "****"
