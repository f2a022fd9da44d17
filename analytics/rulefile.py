"""Rule files: ``[[rule]]`` tables in TOML or objects in JSON, read strictly, every problem with its line.

Each problem reads ``FILE:LINE: rule NAME: problem``, where LINE is the line of the offending key (or
of the rule's ``[[rule]]`` header or JSON object when a key is missing). Every problem of the file is
reported at once and no rule is used until there are none: a wrong type is never coerced
(``enabled = "false"`` is refused, not read as true), and scopes and escalation policies must name
things that exist in the organization (:meth:`RuleFile.check_references`).

tomllib gives no positions, so the lines come from the text itself: a small scanner finds the lines
that begin a TOML statement (outside strings and multi-line arrays), among them each ``[[rule]]``
header and the keys below it. JSON positions come from walking the document with the decoder's
``raw_decode`` one value at a time.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analytics.rules import SCOPES, Rule, parse_duration
from netpulse.errors import ValidationError
from netpulse.metrics import MetricKind
from netpulse.text import name_problem, text_problem

__all__ = ["FILE_KEYS", "Problem", "RuleFile", "RuleFileError", "RuleSource", "load_rule_file", "read_rule_file",
           "rule_from_mapping"]

FILE_KEYS = ("name", "kind", "severity", "metric", "comparator", "value", "clear", "for", "scope", "k",
             "baseline_weeks", "escalation_policy", "enabled")


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    line: int
    rule: str | None   # the rule as named in messages ("latency", or "#3" when it has no usable name)
    message: str

    def format(self, file: str) -> str:
        return f"{file}:{self.line}: " + (f"rule {self.rule}: " if self.rule is not None else "") + self.message


class RuleFileError(ValidationError):
    """Problems in a rule file; no rule of it was used. ``problems`` are in line order."""

    def __init__(self, path: Path, problems: Sequence[Problem]):
        self.path = path
        self.problems = sorted(problems)
        n = len(self.problems)
        summary = self.problems[0].format(str(path)) if n == 1 else f"{n} problems in {path}; no rule was used"
        super().__init__(summary, details={"problems": self.lines()})

    def lines(self) -> list[str]:
        return [p.format(str(self.path)) for p in self.problems]


@dataclass(frozen=True, slots=True)
class RuleSource:
    """Where a rule stands in its file: its header (or object) line and the line of each key."""

    line: int
    keys: Mapping[str, int] = field(default_factory=dict)

    def of(self, key: str | None) -> int:
        return self.keys.get(key, self.line) if key is not None else self.line


@dataclass
class RuleFile:
    """The good rules of a file with their sources, and the problems found so far."""

    path: Path
    rules: list[Rule] = field(default_factory=list)
    sources: list[RuleSource] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def check_references(self, conn: Any, org_id: Any) -> None:
        """Scopes name a device, site, group or tag of the organization; escalation policies exist."""
        for rule, source in zip(self.rules, self.sources, strict=True):
            if rule.scope != "all" and rule.scope_ref is not None:
                problem = _scope_problem(conn, org_id, rule.scope, rule.scope_ref)
                if problem is not None:
                    self.problems.append(Problem(source.of("scope"), rule.name, problem))
            if rule.escalation_policy is not None and conn.execute(
                    "SELECT 1 FROM escalation_policies WHERE organization_id = %s AND name = %s",
                    (org_id, rule.escalation_policy)).fetchone() is None:
                self.problems.append(Problem(source.of("escalation_policy"), rule.name,
                                             f"no escalation policy named {rule.escalation_policy!r} in this "
                                             f"organization"))

    def raise_for_problems(self) -> None:
        if self.problems:
            raise RuleFileError(self.path, self.problems)


def load_rule_file(path: Path) -> list[Rule]:
    """The rules of a TOML or JSON file, or :class:`RuleFileError` listing every problem (no database)."""
    rule_file = read_rule_file(path)
    rule_file.raise_for_problems()
    return rule_file.rules


def read_rule_file(path: Path) -> RuleFile:
    """Read and check ``path``; an unreadable or unparsable file raises :class:`RuleFileError` at once,
    other problems are collected in the result (see :meth:`RuleFile.raise_for_problems`)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read rule file {path}: {exc.strerror or exc}",
                              details={"file": str(path)}) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise RuleFileError(path, [Problem(line, None, f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                                                       "save the file as UTF-8")]) from None
    is_toml = path.suffix.lower() == ".toml"
    try:
        data: Any = tomllib.loads(text) if is_toml else json.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(where.group(1)) if where else text.count("\n") + 1
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
        raise RuleFileError(path, [Problem(line, None, f"not valid TOML: {message}")]) from None
    except json.JSONDecodeError as exc:
        raise RuleFileError(path, [Problem(exc.lineno, None, f"not valid JSON: {exc.msg} "
                                                             f"(column {exc.colno})")]) from None
    except RecursionError:
        raise RuleFileError(path, [Problem(1, None, "nested too deeply to be a rule file")]) from None
    out = RuleFile(path)
    items, sources = (_toml_rules if is_toml else _json_rules)(text, data, out.problems)
    names: dict[str, int] = {}
    for i, (item, source) in enumerate(zip(items, sources, strict=True)):
        label = _label(item, i)
        if not isinstance(item, Mapping):
            out.problems.append(Problem(source.line, label, f"expected an object of rule fields (name, metric, "
                                                            f"comparator, ...), got {_shown(item)}"))
            continue
        rule, problems = _parse(item)
        out.problems += [Problem(source.of(key), label, message) for key, message in problems]
        name = item.get("name")
        if isinstance(name, str) and name in names:
            out.problems.append(Problem(source.of("name"), label, f"the name is already used by the rule on "
                                                                  f"line {names[name]}; names must be unique"))
            continue
        if isinstance(name, str):
            names[name] = source.line
        if rule is not None:
            out.rules.append(rule)
            out.sources.append(source)
    if not items and not out.problems:
        out.problems.append(Problem(1, None, "no rules found; write [[rule]] tables (TOML) or a list of "
                                             "objects (JSON)"))
    return out


def rule_from_mapping(data: Mapping[str, Any], *, where: str = "") -> Rule:
    """One rule from its fields (a file's table, a request body); :class:`ValidationError` names every
    problem."""
    rule, problems = _parse(data)
    if rule is None:
        prefix = f"{where}: " if where else ""
        raise ValidationError(prefix + "; ".join(m for _, m in problems),
                              details={k or "rule": m for k, m in problems})
    return rule


# --- one rule's fields, strictly ---------------------------------------------------------------------


class _Bad(Exception):
    pass


def _shown(value: object) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _label(item: object, index: int) -> str:
    name = item.get("name") if isinstance(item, Mapping) else None
    if isinstance(name, str) and name.strip() and len(name) <= 100 and name_problem(name) is None:
        return name
    return f"#{index + 1}"


def _text(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{key}: {_shown(value)} is not text; write it in quotes")
    problem = text_problem(value)
    if problem is not None:
        raise _Bad(f"{key}: {_shown(value)} {problem}")
    return value


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = "; write it without quotes" if isinstance(value, str) else ""
        raise _Bad(f"{key}: {_shown(value)} is not a number{hint}")
    if not math.isfinite(value):
        raise _Bad(f"{key}: {_shown(value)} is not a finite number")
    return float(value)


def _whole(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{key}: {_shown(value)} is not a whole number")
    return value


def _flag(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"{key}: {_shown(value)} is not true or false; write true or false without quotes")
    return value


def _metric(key: str, value: object) -> MetricKind:
    try:
        return MetricKind.from_name(_text(key, value))
    except ValueError as exc:
        raise _Bad(str(exc)) from None


def _scope(key: str, value: object) -> tuple[str, str | None]:
    text = _text(key, value)
    if text == "all":
        return "all", None
    scope, sep, ref = text.partition(":")
    if scope not in SCOPES or scope == "all":
        raise _Bad(f"scope {text!r} is not all or one of {', '.join(s + ':NAME' for s in SCOPES[:-1])}")
    if not sep or not ref.strip():
        raise _Bad(f"scope {text!r} needs a name, e.g. {scope}:core-1")
    return scope, ref


def _duration(key: str, value: object) -> int:
    try:
        return parse_duration(value, field_name=key)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise _Bad(exc.message) from None


_FIELDS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    # file key: (Rule field, checker)
    "name": ("name", _text), "kind": ("kind", _text), "severity": ("severity", _text),
    "metric": ("metric", _metric), "comparator": ("comparator", _text), "value": ("value", _number),
    "clear": ("clear_value", _number), "for": ("for_s", _duration), "k": ("k_mad", _number),
    "baseline_weeks": ("baseline_weeks", _whole), "escalation_policy": ("escalation_policy", _text),
    "enabled": ("enabled", _flag), "scope": ("scope", _scope),
}
assert set(_FIELDS) == set(FILE_KEYS)


def _parse(data: Mapping[str, Any]) -> tuple[Rule | None, list[tuple[str | None, str]]]:
    """The rule, or None and every problem as (file key or None, message)."""
    problems: list[tuple[str | None, str]] = []
    for key in data:
        if key not in _FIELDS:
            problems.append((key, f"unknown key {key!r}; the keys are: {', '.join(FILE_KEYS)}"))
    values: dict[str, Any] = {}
    for key, (attr, check) in _FIELDS.items():
        if key not in data or data[key] is None:
            continue
        try:
            value = check(key, data[key])
        except _Bad as exc:
            problems.append((key, str(exc)))
            continue
        if key == "scope":
            values["scope"], values["scope_ref"] = value
        else:
            values[attr] = value
    if isinstance(values.get("name"), str) and name_problem(values["name"]) is not None:
        problems.append(("name", f"name: {_shown(values['name'])} {name_problem(values['name'])}"))
    # The kind a rule without one has: a baseline (k), a threshold (a metric), else the device status.
    values.setdefault("kind", "dynamic" if "k" in data else "threshold" if "metric" in data else "status")
    values.setdefault("severity", "warning")
    values.setdefault("name", "")
    flagged = {key for key, _ in problems}
    try:
        rule = Rule(**values)
    except ValidationError as exc:
        problems += [(key, message) for key, message in exc.details.items() if key not in flagged]
        rule = None
    except TypeError as exc:   # a field of the wrong type that the checks above let through
        problems.append((None, str(exc)))
        rule = None
    return (None, problems) if problems else (rule, [])


# --- where each rule stands in the text ----------------------------------------------------------------


def _line_of(starts: list[int]) -> Callable[[int], int]:
    return lambda offset: bisect.bisect_right(starts, offset) + 1


def _toml_statement_lines(text: str) -> list[int]:
    """1-based numbers of the lines that begin outside any string and any multi-line array (the lines
    that can hold a table header or a key); the text is valid TOML (tomllib read it)."""
    lines: list[int] = []
    state: str | None = None        # None, or the open quote: " ' \"\"\" '''
    depth, line, i, n = 0, 1, 0, len(text)
    at_start = True
    while i < n:
        if at_start:
            if state is None and depth == 0:
                lines.append(line)
            at_start = False
        ch = text[i]
        if ch == "\n":
            line, at_start = line + 1, True
            i += 1
            continue
        if state is None:
            if ch == "#":
                end = text.find("\n", i)
                i = n if end < 0 else end
                continue
            for quote in ('"""', "'''", '"', "'"):
                if text.startswith(quote, i):
                    state, i = quote, i + len(quote)
                    break
            else:
                depth += 1 if ch in "[{" else -1 if ch in "]}" else 0
                i += 1
            continue
        if ch == "\\" and state in ('"', '"""') and i + 1 < n and text[i + 1] != "\n":
            i += 2
            continue
        if text.startswith(state, i):
            i += len(state)
            if len(state) == 3:     # up to two more quotes belong to the string: """a""""" ends after them
                while i < n and text[i] == state[0]:
                    i += 1
            state = None
            continue
        i += 1
    return lines


_TOML_RULE_HEADER = re.compile(r"""^\s*\[\[\s*(rule|"rule"|'rule')\s*\]\]\s*(#.*)?$""")
_TOML_KEY = re.compile(r"""^\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*=""")


def _toml_rules(text: str, data: dict[str, Any], problems: list[Problem]) -> tuple[list[Any], list[RuleSource]]:
    rows = text.split("\n")
    statements = _toml_statement_lines(text)
    headers = [n for n in statements if _TOML_RULE_HEADER.match(rows[n - 1])]
    first_table = next((n for n in statements if rows[n - 1].lstrip().startswith("[")), len(rows) + 1)
    top_keys = {_key(rows[n - 1]): n for n in statements if n < first_table and _key(rows[n - 1])}
    for key in data:
        if key != "rule":
            problems.append(Problem(top_keys.get(key, 1), None, f"unknown top-level key {key!r}; rules go in "
                                                                "[[rule]] tables"))
    items = data.get("rule", [])
    if not isinstance(items, list):
        problems.append(Problem(top_keys.get("rule", headers[0] if headers else 1), None,
                                "'rule' must be [[rule]] tables (with double brackets)"))
        return [], []
    if len(headers) != len(items):  # e.g. rule = [{...}, {...}]: every rule at the line of "rule ="
        line = top_keys.get("rule", 1)
        return items, [RuleSource(line) for _ in items]
    sources = []
    ends = [*headers[1:], len(rows) + 1][:len(headers)]
    for start, end in zip(headers, ends, strict=True):
        keys: dict[str, int] = {}
        for n in statements:
            if start < n < end:
                if rows[n - 1].lstrip().startswith("["):
                    break
                found = _key(rows[n - 1])
                if found is not None:
                    keys.setdefault(found, n)
        sources.append(RuleSource(start, keys))
    return items, sources


def _key(row: str) -> str | None:
    match = _TOML_KEY.match(row)
    if match is None:
        return None
    return next(g for g in match.groups() if g is not None)


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _json_rules(text: str, data: Any, problems: list[Problem]) -> tuple[list[Any], list[RuleSource]]:
    line_of = _line_of([m.end() for m in re.finditer("\n", text)])
    decoder = json.JSONDecoder()
    start = _JSON_SPACE.match(text, 0).end()  # type: ignore[union-attr]
    if isinstance(data, dict):
        members = _json_members(decoder, text, start)
        for key, (key_at, _) in members.items():
            if key != "rule":
                problems.append(Problem(line_of(key_at), None, f"unknown top-level key {key!r}; give a list "
                                                                "of rules, or put them under \"rule\""))
        if "rule" not in members:
            return [], []
        start = members["rule"][1]
        data = data["rule"]
    if not isinstance(data, list):
        problems.append(Problem(line_of(start), None, "expected a list of rules (objects), got "
                                                      f"{_shown(data)}"))
        return [], []
    sources = []
    for at in _json_elements(decoder, text, start):
        if text.startswith("{", at):
            members = _json_members(decoder, text, at)
            sources.append(RuleSource(line_of(at), {k: line_of(k_at) for k, (k_at, _) in members.items()}))
        else:
            sources.append(RuleSource(line_of(at)))
    return data, sources


def _json_elements(decoder: json.JSONDecoder, text: str, at: int) -> list[int]:
    """Start offsets of the elements of the array at ``at``."""
    starts = []
    i = _JSON_SPACE.match(text, at + 1).end()  # type: ignore[union-attr]
    while not text.startswith("]", i):
        starts.append(i)
        _, i = decoder.raw_decode(text, i)
        i = _JSON_SPACE.match(text, i).end()  # type: ignore[union-attr]
        if text.startswith(",", i):
            i = _JSON_SPACE.match(text, i + 1).end()  # type: ignore[union-attr]
    return starts


def _json_members(decoder: json.JSONDecoder, text: str, at: int) -> dict[str, tuple[int, int]]:
    """key -> (offset of the key, offset of its value) for the object at ``at`` (the last of a repeated key)."""
    members: dict[str, tuple[int, int]] = {}
    i = _JSON_SPACE.match(text, at + 1).end()  # type: ignore[union-attr]
    while not text.startswith("}", i):
        key, after = decoder.raw_decode(text, i)
        colon = _JSON_SPACE.match(text, after).end()  # type: ignore[union-attr]
        value_at = _JSON_SPACE.match(text, colon + 1).end()  # type: ignore[union-attr]
        members[key] = (i, value_at)
        _, i = decoder.raw_decode(text, value_at)
        i = _JSON_SPACE.match(text, i).end()  # type: ignore[union-attr]
        if text.startswith(",", i):
            i = _JSON_SPACE.match(text, i + 1).end()  # type: ignore[union-attr]
    return members


def _scope_problem(conn: Any, org_id: Any, scope: str, ref: str) -> str | None:
    """None when the organization has the device, site, group or tag named ``ref``; else what is wrong,
    with the spelling that exists when only the case differs."""
    table = {"device": "devices", "site": "sites", "group": "device_groups", "tag": "tags"}[scope]
    rows = conn.execute(f"SELECT name FROM {table} WHERE organization_id = %s AND lower(name) = lower(%s) "
                        "ORDER BY name = %s DESC LIMIT 1", (org_id, ref, ref)).fetchall()
    if rows and rows[0][0] == ref:
        return None
    hint = f" (did you mean {rows[0][0]!r}?)" if rows else ""
    return f"scope {scope}:{ref}: no {scope} named {ref!r} in this organization{hint}"
