"""Characters in typed-in text that hide, reorder or break what people see, and names a spreadsheet runs.

Names (devices, sites, groups, tags, rules) are read by people on pages, in reports and in
notifications, so they may hold no control or invisible character, no right-to-left override that
shows ``core-1`` for what is stored as something else, and may not start like a spreadsheet formula.
Free text (descriptions) keeps line breaks and tabs, and may start with ``-`` (the one CSV writer
escapes formula-like cells on every export); NUL and the other control and direction-override
characters are refused there too.

>>> name_problem("core-1") is None
True
>>> name_problem("core\\u200b1")
'contains U+200B ZERO WIDTH SPACE, an invisible character; remove it'
>>> name_problem("=cmd|' /C calc'!A0")
"starts with '=', which a spreadsheet runs as a formula; start it with a letter or a digit"
>>> text_problem("Access switch,\\nsecond floor") is None
True
>>> text_problem("up\\x00link")
'contains U+0000, a control character; remove it'
>>> unescape_cell("'=SUM(A1)"), unescape_cell("'quoted")
('=SUM(A1)', "'quoted")
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["FORMULA_STARTS", "formula_start", "name_problem", "text_problem", "unescape_cell"]

# A cell that starts with one of these is a formula to a spreadsheet (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
# Explicit direction controls: embeddings, overrides, isolates and marks (the "Trojan Source" set).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_FREE_TEXT_CONTROLS = frozenset("\t\n\r")


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, "")
    code = f"U+{ord(ch):04X}" + (f" {name}" if name else "")
    if ch in _BIDI:
        return f"{code}, which reorders the text shown around it"
    category = unicodedata.category(ch)
    if category == "Cc":
        return f"{code}, a control character"
    if category in ("Zs", "Zl", "Zp"):
        return f"{code}, a space or line break other than the plain space"
    if category == "Cf":
        return f"{code}, an invisible character"
    return f"{code}, which is not a printable character"


def _first_bad(text: str, bad: frozenset[str] | None, categories: tuple[str, ...]) -> str | None:
    for ch in text:
        if (bad is not None and ch in bad) or (unicodedata.category(ch) in categories and ch != " "):
            return f"contains {_describe(ch)}; remove it"
    return None


def formula_start(text: str) -> str | None:
    """The character that makes ``text`` a spreadsheet formula, or None (plain numbers are not)."""
    if text.startswith(FORMULA_STARTS) and not _NUMBER.match(text):
        return text[0]
    return None


def name_problem(text: str) -> str | None:
    """What makes ``text`` unfit as a name (one sentence), or None when it is fine."""
    problem = _first_bad(text, _BIDI, ("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"))
    if problem is not None:
        return problem
    start = formula_start(text)
    if start is not None:
        return f"starts with {start!r}, which a spreadsheet runs as a formula; start it with a letter or a digit"
    return None


def text_problem(text: str) -> str | None:
    """What makes ``text`` unfit as free text (NUL and other controls, direction overrides), or None."""
    controls = frozenset(ch for ch in text if unicodedata.category(ch) == "Cc") - _FREE_TEXT_CONTROLS
    return _first_bad(text, _BIDI | controls, ())


def unescape_cell(text: str) -> str:
    """A CSV cell as it was before the CSV writer escaped it: ``'=x`` (a formula-like value behind the
    writer's apostrophe) is ``=x`` again, so an exported file imports back unchanged."""
    if text.startswith("'") and formula_start(text[1:]) is not None:
        return text[1:]
    return text
