"""Rule files: strict types, every problem reported at once with its line, scopes checked against the
organization, and the CLI's one error line.

Each invalid case has its own small file, ``tests/data/rules/invalid-<case>.toml|json``, and a row in
a table of exact messages (blackbox_exporter's ``config/testdata``).
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from analytics.rulefile import RuleFileError, load_rule_file, read_rule_file
from analytics.rules import load_rules
from cli import main
from tests.factories import make_devices, make_org

DATA = Path(__file__).parent / "data" / "rules"
KEYS = ("name, kind, severity, metric, comparator, value, clear, for, scope, k, baseline_weeks, escalation_policy, "
        "enabled")
NOT_A_DURATION = "is not a duration; use a number and a unit (w, d, h, m, s), e.g. 30d, 90m or 1d12h"
NOT_A_RULE = "expected an object of rule fields (name, metric, comparator, ...), got"

CASES: list[tuple[str, list[str]]] = [
    ("enabled-string.toml", ["6: rule latency: enabled: 'false' is not true or false; write true or false without "
                             "quotes"]),
    ("for-overflow.toml", ["6: rule latency: for: 4294967296 is longer than the longest accepted (3660 days)"]),
    ("numbers.json", [f"1: rule #1: {NOT_A_RULE} 1", f"2: rule #2: {NOT_A_RULE} 2.5", f"3: rule #3: {NOT_A_RULE} 3"]),
    ("not-utf8.toml", ["2: not UTF-8 text (byte 0xe9); save the file as UTF-8"]),
    ("syntax.toml", ["3: not valid TOML: Invalid value"]),
    ("syntax.json", ["3: not valid JSON: Expecting property name enclosed in double quotes (column 28)"]),
    ("types.json", [
        "3: rule latency: value: '150' is not a number; write it without quotes",
        "4: rule latency: clear: true is not a number",
        f"5: rule latency: for: [5] {NOT_A_DURATION}",
        "6: rule latency: scope: 7 is not text; write it in quotes",
        "8: rule baseline: baseline_weeks: 2.5 is not a whole number",
        "8: rule baseline: severity 'high' is not one of info, warning, critical",
    ]),
    ("single-table.toml", ["1: 'rule' must be [[rule]] tables (with double brackets)"]),
    ("empty.toml", ["1: no rules found; write [[rule]] tables (TOML) or a list of objects (JSON)"]),
    ("anomaly-k.toml", [
        "5: rule odd latency: an anomaly rule needs k in (0, 1] (the score that fires it; 0.5 is anomalous)",
        "6: rule odd latency: an anomaly rule takes no comparator (it fires at score >= k)",
    ]),
    ("duplicate-name.json", ["3: rule down: the name is already used by the rule on line 2; names must be unique"]),
    ("hidden-characters.json", [
        r"2: rule #1: name: 'down\x00' contains U+0000, a control character; remove it",
        r"3: rule #2: name: 'lat\u202ency' contains U+202E RIGHT-TO-LEFT OVERRIDE, which reorders the text shown "
        "around it; remove it",
        "4: rule #3: name: \"=cmd|' /C calc'!A0\" starts with '=', which a spreadsheet runs as a formula; start it "
        "with a letter or a digit",
        r"5: rule scoped: scope: 'site:Nai\x00robi' contains U+0000, a control character; remove it",
    ]),
    # Every problem of the file, each at its own line; a [[rule]] inside a multi-line string is text.
    ("several.toml", [
        "2: unknown top-level key 'title'; rules go in [[rule]] tables",
        "8: rule latency: value: '150' is not a number; write it without quotes",
        f"9: rule latency: unknown key 'note'; the keys are: {KEYS}",
        f"13: rule latency: for: '5 minutes' {NOT_A_DURATION}",
        "18: rule cpu: a dynamic rule needs k > 0 (the band's half-width in MADs)",
        "19: rule cpu: enabled: 'false' is not true or false; write true or false without quotes",
        "22: rule latency: the name is already used by the rule on line 4; names must be unique",
        "24: rule latency: scope 'site:' needs a name, e.g. site:core-1",
        "26: rule #4: a rule needs a name of at most 100 characters",
        "28: rule #4: comparator '=>' is not one of > >= < <=",
    ]),
]


def test_every_invalid_file_has_a_case() -> None:
    assert {p.name for p in DATA.glob("invalid-*")} == {f"invalid-{case}" for case, _ in CASES}


@pytest.mark.parametrize(("case", "expected"), CASES, ids=[c for c, _ in CASES])
def test_every_problem_is_reported_with_its_line(case: str, expected: list[str]) -> None:
    path = DATA / f"invalid-{case}"
    with pytest.raises(RuleFileError) as exc_info:
        load_rule_file(path)
    assert exc_info.value.lines() == [f"{path}:{line}" for line in expected]
    summary = f"{path}:{expected[0]}" if len(expected) == 1 else f"{len(expected)} problems in {path}; no rule was used"
    assert exc_info.value.message == summary


def test_lines_of_rules_and_keys_in_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "rules.toml"
    toml.write_text('# "[[rule]]" in a comment\n'
                    '[[rule]]\nname = "a" # a comment with [[rule]]\nkind = "status"\n'
                    'severity = \'info\'\n\n'
                    "  [[ rule ]]  # indented\n"
                    'name = """x\\\n[[rule]]"""\n'           # a line-ending backslash, then a header in the string
                    "kind = 'status'\n"
                    "\"scope\" = '''site:[[rule]]'''\n")
    found = read_rule_file(toml)
    assert [s.line for s in found.sources] == [2, 7]
    assert dict(found.sources[0].keys) == {"name": 3, "kind": 4, "severity": 5}
    assert dict(found.sources[1].keys) == {"name": 8, "kind": 10, "scope": 11}
    assert [(r.name, r.scope_ref) for r in found.rules] == [("a", None), ("x[[rule]]", "[[rule]]")]
    js = tmp_path / "rules.json"
    js.write_text('{"rule": [\n {"name": "a", "kind": "status"},\n {\n  "name": "b",\n  "kind": "status"}]}')
    found = read_rule_file(js)
    assert [(s.line, dict(s.keys)) for s in found.sources] == [(2, {"name": 2, "kind": 2}),
                                                               (3, {"name": 4, "kind": 5})]


def test_strict_booleans_are_saved_as_written(tmp_path: Path, db: psycopg.Connection, settings_env: None) -> None:
    make_org(db)
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nname = "quiet"\nkind = "status"\nenabled = false\n')
    result = CliRunner().invoke(main, ["rules", "load", str(path)])
    assert result.exit_code == 0, result.output
    org = db.execute("SELECT id FROM organizations").fetchone()[0]  # type: ignore[index]
    assert [(r.name, r.enabled) for r in load_rules(db, org, enabled_only=False)] == [("quiet", False)]


@pytest.fixture
def scoped_org(db: psycopg.Connection) -> None:
    org = make_org(db)
    (dev,) = make_devices(db, org, 1)          # dev-0
    site = db.execute("INSERT INTO sites (organization_id, name, slug) VALUES (%s, 'Nairobi', 'nairobi') "
                      "RETURNING id", (org,)).fetchone()[0]  # type: ignore[index]
    db.execute("INSERT INTO device_groups (organization_id, name, slug) VALUES (%s, 'Core', 'core')", (org,))
    db.execute("UPDATE devices SET site_id = %s WHERE id = %s", (site, dev))
    other = make_org(db, "globex")             # a tag of another organization is no tag of this one
    db.execute("INSERT INTO tags (organization_id, name, slug) VALUES (%s, 'edge', 'edge')", (other,))


UNKNOWN_SCOPES = [
    {"name": "ok site", "kind": "status", "scope": "site:Nairobi"},
    {"name": "ok device", "kind": "status", "scope": "device:dev-0"},
    {"name": "ok group", "kind": "status", "scope": "group:Core"},
    {"name": "site", "kind": "status", "scope": "site:nairobi"},
    {"name": "device", "kind": "status", "scope": "device:core-9"},
    {"name": "tag", "kind": "status", "scope": "tag:edge"},
    {"name": "policy", "kind": "status", "escalation_policy": "night shift"},
]
UNKNOWN_SCOPE_LINES = [
    "5: rule site: scope site:nairobi: no site named 'nairobi' in this organization (did you mean 'Nairobi'?)",
    "6: rule device: scope device:core-9: no device named 'core-9' in this organization",
    "7: rule tag: scope tag:edge: no tag named 'edge' in this organization",
    "8: rule policy: no escalation policy named 'night shift' in this organization",
]


@pytest.mark.parametrize("command", ["load", "backtest"])
def test_unknown_scopes_are_refused_at_load_and_backtest(command: str, tmp_path: Path, db: psycopg.Connection,
                                                         scoped_org: None, settings_env: None) -> None:
    path = tmp_path / "rules.json"
    path.write_text("[\n" + ",\n".join(json.dumps(r) for r in UNKNOWN_SCOPES) + "\n]\n")
    result = CliRunner().invoke(main, ["rules", command, str(path), "--org", "acme"])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [*(f"{path}:{line}" for line in UNKNOWN_SCOPE_LINES),
                                          f"Error: 4 problems in {path}; no rule was used"]
    assert db.execute("SELECT count(*) FROM alert_rules").fetchone() == (0,)


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "99999999w"], "Error: --since: '99999999w' is longer than the longest accepted (3660 days)"),
    (["--since", "7 days ago"], "Error: --since: '7 days ago' is not a duration; use a number and a unit"),
    (["--until", "0001-01-01"], "Error: --until: '0001-01-01' is outside the accepted range"),
    (["--until", "yesterday"], "Error: --until: 'yesterday' is not an ISO 8601 time"),
])
def test_backtest_bounds_are_one_clear_error(args: list[str], message: str, tmp_path: Path, db: psycopg.Connection,
                                             settings_env: None) -> None:
    make_org(db)
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nname = "x"\nmetric = "icmp_rtt_ms"\ncomparator = ">"\nvalue = 1\n')
    result = CliRunner().invoke(main, ["rules", "backtest", str(path), *args])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_single_problem_is_the_error_line(tmp_path: Path, db: psycopg.Connection, settings_env: None) -> None:
    make_org(db)
    path = DATA / "invalid-enabled-string.toml"
    result = CliRunner().invoke(main, ["rules", "load", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"Error: {path}:6: rule latency: enabled: 'false' is not true or false; "
                                          "write true or false without quotes"]
