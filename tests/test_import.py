"""CSV import of devices: all or nothing, every bad line reported by its physical line number.

Each bad-line rule has its own small file, ``tests/data/import/invalid-<case>.csv``, and a row in a
table of exact messages (blackbox_exporter's ``config/testdata``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from cli import main
from netpulse import crypto
from netpulse.inventory import DeviceImportError, ImportReport, import_devices_csv
from tests.conftest import TEST_ENCRYPTION_KEY
from tests.factories import make_org

DATA = Path(__file__).parent / "data" / "import"
NETPULSE = Path(sys.executable).with_name("netpulse")
TYPES = "router, switch, firewall, server, access_point, load_balancer, wireless_controller, storage, other"
EXISTING = ("existing-1", "192.0.2.250")  # in the database before the import, for the duplicate cases


@pytest.fixture
def org(db: psycopg.Connection) -> uuid.UUID:
    """The only organization, with a v3 credential profile named ``v3-ops``."""
    org_id = make_org(db, "acme")
    db.execute("INSERT INTO snmp_credentials (organization_id, name, version, username, auth_protocol, "
               "auth_password) VALUES (%s, 'v3-ops', '3', 'netpulse', 'SHA', 'authpass123')", (org_id,))
    return org_id



def _existing(db: psycopg.Connection, org_id: uuid.UUID) -> int:
    row = db.execute("INSERT INTO devices (organization_id, name, address, ip_address, device_type) "
                     "VALUES (%s, %s, %s, %s, 'router') RETURNING id", (org_id, *EXISTING, EXISTING[1])).fetchone()
    assert row is not None
    return int(row[0])


def _device_names(db: psycopg.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM devices").fetchall()}


def _table_counts(db: psycopg.Connection) -> dict[str, int]:
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in ("devices", "sites", "device_groups", "tags", "device_tags")}


# --- a good file ------------------------------------------------------------------------------------


def test_good_file_imports_with_sites_groups_tags_and_parents(session: Session, org: uuid.UUID,
                                                              db: psycopg.Connection) -> None:
    report = import_devices_csv(session, org, DATA / "valid-devices.csv")
    session.commit()
    assert report == ImportReport(devices=5, sites=2, groups=3, tags=5)
    assert report.summary() == "imported 5 device(s); created 2 site(s), 3 group(s), 5 tag(s)"

    rows = db.execute(
        "SELECT d.name, d.address, host(d.ip_address), d.device_type, s.slug, g.name, p.name, d.snmp_version, "
        "d.snmp_community, c.name, d.snmp_port, d.probe_interval_s, d.description "
        "FROM devices d LEFT JOIN sites s ON s.id = d.site_id LEFT JOIN device_groups g ON g.id = d.group_id "
        "LEFT JOIN devices p ON p.id = d.parent_id LEFT JOIN snmp_credentials c ON c.id = d.snmp_credential_id "
        "WHERE d.organization_id = %s ORDER BY d.name", (org,)).fetchall()
    assert rows[0][8].startswith(crypto.PREFIX)  # stored encrypted
    rows = [(*r[:8], crypto.decrypt(r[8]), *r[9:]) for r in rows]
    assert rows == [
        ("access-1", "10.0.1.11", "10.0.1.11", "switch", "lagos-hq", "Access", "core-1", "2c", "public", None,
         161, 30, "Access switch floor 1"),
        ("access-2", "10.0.1.12", "10.0.1.12", "switch", "lagos-hq", "Access", "core-1", None, None, None,
         161, None, "Access switch,\nsecond floor"),
        ("core-1", "10.0.0.1", "10.0.0.1", "router", "lagos-hq", "Core", "edge-fw", None, None, None,
         161, 60, "Core router"),
        ("edge-fw", "fw.example.net", None, "firewall", "lagos-hq", None, None, "3", None, "v3-ops",
         1161, None, "Edge firewall"),
        ("srv-1", "2001:db8::10", "2001:db8::10", "server", "abuja-dc", "Servers", "access-1", None, None, None,
         161, None, ""),
    ]
    # 'Lagos HQ' and 'lagos-hq' are one site, named as first written.
    assert db.execute("SELECT name, slug FROM sites ORDER BY slug").fetchall() == [
        ("Abuja DC", "abuja-dc"), ("Lagos HQ", "lagos-hq")]
    tags = db.execute("SELECT d.name, string_agg(t.slug, ',' ORDER BY t.slug) FROM device_tags dt "
                      "JOIN devices d ON d.id = dt.device_id JOIN tags t ON t.id = dt.tag_id "
                      "GROUP BY d.name ORDER BY d.name").fetchall()
    assert tags == [("access-1", "floor-1,poe"), ("access-2", "floor-2,poe"), ("core-1", "core"),
                    ("edge-fw", "edge")]


def test_parent_after_child_and_existing_sites_and_tags_are_reused(session: Session, org: uuid.UUID,
                                                                   db: psycopg.Connection) -> None:
    db.execute("INSERT INTO sites (organization_id, name, slug) VALUES (%s, 'Lagos HQ', 'lagos-hq')", (org,))
    db.execute("INSERT INTO tags (organization_id, name, slug) VALUES (%s, 'Core', 'core')", (org,))
    text = ("name,address,type,site,tags,parent\n"
            "leaf,10.0.0.3,switch,LAGOS HQ,core,middle\n"
            "middle,10.0.0.2,switch,lagos-hq,,root\n"
            "root,10.0.0.1,router,Lagos HQ,Core|new,\n")
    report = import_devices_csv(session, org, text)
    session.commit()
    assert report == ImportReport(devices=3, sites=0, groups=0, tags=1)
    parents = db.execute("SELECT d.name, p.name FROM devices d LEFT JOIN devices p ON p.id = d.parent_id "
                         "ORDER BY d.name").fetchall()
    assert parents == [("leaf", "middle"), ("middle", "root"), ("root", None)]
    assert _table_counts(db)["sites"] == 1


def test_parent_may_be_a_device_already_in_the_database(session: Session, org: uuid.UUID,
                                                        db: psycopg.Connection) -> None:
    existing_id = _existing(db, org)
    import_devices_csv(session, org, "name,hostname,type,parent\nsw-1,sw-1.example.net,switch,existing-1\n")
    session.commit()
    assert db.execute("SELECT parent_id FROM devices WHERE name = 'sw-1'").fetchone() == (existing_id,)


def test_dry_run_reports_and_writes_nothing(session: Session, org: uuid.UUID, db: psycopg.Connection) -> None:
    report = import_devices_csv(session, org, DATA / "valid-devices.csv", dry_run=True)
    session.commit()
    assert report == ImportReport(devices=5, sites=2, groups=3, tags=5, dry_run=True)
    assert report.summary().startswith("dry run: 5 device(s) would be imported")
    assert _table_counts(db) == {"devices": 0, "sites": 0, "device_groups": 0, "tags": 0, "device_tags": 0}


def test_import_is_scoped_to_the_organization(session: Session, org: uuid.UUID, db: psycopg.Connection) -> None:
    other = make_org(db, "globex")
    _existing(db, other)  # the same name and address in another organization is no conflict
    import_devices_csv(session, org, "name,address,type\nexisting-1,192.0.2.250,router\n")
    session.commit()
    assert db.execute("SELECT count(*) FROM devices WHERE organization_id = %s", (org,)).fetchone() == (1,)


def test_progress_is_reported(session: Session, org: uuid.UUID) -> None:
    lines = ["name,address,type,parent"] + [f"d{i},10.1.{i // 250}.{i % 250 + 1},server,{'d0' if i else ''}"
                                            for i in range(1200)]
    calls: list[tuple[int, int]] = []
    report = import_devices_csv(session, org, "\n".join(lines) + "\n", progress=lambda d, t: calls.append((d, t)))
    assert report.devices == 1200
    assert calls[0] == (1, 1200) and calls[-1] == (1200, 1200)


# --- bad lines ---------------------------------------------------------------------------------------

CASES: list[tuple[str, list[tuple[int, str]]]] = [
    ("ip", [(3, "address: '300.1.1.1' is not a valid IP address or hostname")]),
    ("hostname", [(2, "address: 'bad_host!.example.com' is not a valid IP address or hostname")]),
    ("unknown-type", [(3, f"type: 'toaster' is not a device type; use one of: {TYPES}")]),
    ("missing-name", [(2, "name: a name is required")]),
    ("missing-address", [(2, "address: an address is required: an IPv4 or IPv6 address or a hostname")]),
    ("missing-type", [(2, f"type: a device type is required; use one of: {TYPES}")]),
    ("missing-column", [(1, "missing required column(s) type; every file needs name, address, type")]),
    ("unknown-column", [(1, "unknown column(s) 'Location', 'vendor'; the columns are: name, address, type, site, "
                            "group, tags, parent, snmp_version, snmp_community, snmp_credential, snmp_port, "
                            "probe_interval_s, description (address may be headed ip or hostname)")]),
    ("duplicate-name", [(4, "name: 'core-1' is already used on line 2; device names must be unique")]),
    ("duplicate-address", [(3, "address: '10.0.0.1' is already the address of 'core-1' on line 2; "
                               "each device needs its own address")]),
    ("duplicate-address-ipv6", [(3, "address: '2001:db8::1' is already the address of 'v6-a' on line 2; "
                                    "each device needs its own address")]),
    ("duplicate-db-name", [(2, "name: a device named 'existing-1' already exists in this organization "
                               "(id {existing_id}); rename the row or remove it")]),
    ("duplicate-db-address", [(2, "address: '192.0.2.250' is already the address of device 'existing-1' "
                                  "(id {existing_id}) in the database")]),
    ("duplicate-name-case", [(3, "name: 'CORE-1' differs only by case from 'core-1' on line 2; device names must "
                                 "be unique ignoring case")]),
    ("duplicate-db-name-case", [(2, "name: 'Existing-1' differs only by case from device 'existing-1' (id "
                                    "{existing_id}) in this organization; device names must be unique ignoring "
                                    "case")]),
    ("nul-byte", [(2, r"description: 'up\x00link' contains U+0000, a control character; remove it"),
                  (3, r"site: 'Lag\x00os' contains U+0000, a control character; remove it")]),
    ("zero-width", [(2, r"name: 'core\u200b-1' contains U+200B ZERO WIDTH SPACE, an invisible character; remove it"),
                    (3, r"tags: tag 'core\u2060' contains U+2060 WORD JOINER, an invisible character; remove it")]),
    ("bidi-override", [(2, r"name: 'fw-\u202e1-eroc' contains U+202E RIGHT-TO-LEFT OVERRIDE, which reorders the "
                           "text shown around it; remove it"),
                       (3, r"description: 'see \u2066note\u2069' contains U+2066 LEFT-TO-RIGHT ISOLATE, which "
                           "reorders the text shown around it; remove it")]),
    # Names may not start like a formula; a description may (-48V DC feed): CSV exports escape it.
    ("formula", [(2, "name: \"=cmd|' /C calc'!A0\" starts with '=', which a spreadsheet runs as a formula; start "
                     "it with a letter or a digit"),
                 (3, "name: '+SUM(A1)' starts with '+', which a spreadsheet runs as a formula; start it with a "
                     "letter or a digit"),
                 (4, "name: '@x' starts with '@', which a spreadsheet runs as a formula; start it with a letter "
                     "or a digit"),
                 (5, "name: '-1+1' starts with '-', which a spreadsheet runs as a formula; start it with a letter "
                     "or a digit"),
                 (6, "site: '=HYPERLINK(\"http://x\")' starts with '=', which a spreadsheet runs as a formula; "
                     "start it with a letter or a digit")]),
    ("unknown-parent", [(2, "parent: 'nowhere' is neither in this file nor in the database; add it to the file "
                            "or leave parent empty")]),
    ("self-parent", [(2, "parent: a device cannot be its own parent ('sw-1')")]),
    ("parent-cycle", [
        (3, "parent: 'b' closes a cycle a -> b -> c -> a (lines 3, 4, 5); leave one of these parents empty"),
        (4, "parent: 'c' closes a cycle a -> b -> c -> a (lines 3, 4, 5); leave one of these parents empty"),
        (5, "parent: 'a' closes a cycle a -> b -> c -> a (lines 3, 4, 5); leave one of these parents empty"),
    ]),
    ("snmp-version", [(2, "snmp_version: '1' is not a supported SNMP version; use 2c or 3, or leave it empty "
                          "to not poll SNMP")]),
    ("snmp-port", [(2, "snmp_port: 70000 is out of range; use 1 to 65535 (a UDP port)"),
                   (3, "snmp_port: 'abc' is not a whole number; use 1 to 65535 (a UDP port)")]),
    ("probe-interval", [(2, "probe_interval_s: 0 is out of range; use 1 to 86400 seconds"),
                        (3, "probe_interval_s: '1m' is not a whole number; use 1 to 86400 seconds")]),
    ("unknown-snmp-credential", [(2, "snmp_credential: no SNMP credential profile named 'nope' in this "
                                     "organization; known profiles: v3-ops")]),
    ("snmp-v2c-without-community", [(2, "snmp_community: SNMP v2c needs a community; set snmp_community or name "
                                        "a credential profile in snmp_credential")]),
    ("too-many-fields", [(2, "4 fields but the header has 3 columns; quote values that contain commas")]),
    ("after-multiline", [(5, "address: '10.0.0.300' is not a valid IP address or hostname")]),
    ("unterminated-quote", [(2, "cannot parse the CSV: unexpected end of data; check the quotes on this line")]),
    ("empty", [(1, "the file is empty; the first line must be a header such as name,address,type,site,group,"
                   "tags,parent,snmp_version,snmp_community,snmp_credential,snmp_port,probe_interval_s,"
                   "description")]),
]


def test_every_invalid_file_has_a_case() -> None:
    files = {p.name for p in DATA.glob("invalid-*.csv")} - {"invalid-several.csv"}
    assert files == {f"invalid-{case}.csv" for case, _ in CASES}


@pytest.mark.parametrize(("case", "expected"), CASES, ids=[c for c, _ in CASES])
def test_bad_line_is_reported_and_nothing_imported(case: str, expected: list[tuple[int, str]], session: Session,
                                                   org: uuid.UUID, db: psycopg.Connection) -> None:
    existing_id = _existing(db, org) if case.startswith("duplicate-db") else None
    path = DATA / f"invalid-{case}.csv"
    with pytest.raises(DeviceImportError) as exc_info:
        import_devices_csv(session, org, path)
    session.commit()
    err = exc_info.value
    assert err.errors == [(line, message.format(existing_id=existing_id)) for line, message in expected]
    bad = len({line for line, _ in expected})
    assert err.message == f"{bad} bad line(s) in {path}; nothing was imported"
    assert err.code == "INVALID_INPUT"
    assert err.details["lines"][0] == {"line": expected[0][0], "message": err.errors[0][1]}
    assert _device_names(db) == ({"existing-1"} if existing_id else set())
    assert _table_counts(db)["sites"] == 0


def test_several_bad_lines_are_all_reported(session: Session, org: uuid.UUID, db: psycopg.Connection) -> None:
    with pytest.raises(DeviceImportError) as exc_info:
        import_devices_csv(session, org, DATA / "invalid-several.csv")
    session.commit()
    assert exc_info.value.errors == [
        (3, "ip: '10.0.0.256' is not a valid IP address or hostname"),
        (4, f"type: 'fridge' is not a device type; use one of: {TYPES}"),
        (5, "parent: 'core-9' is neither in this file nor in the database; add it to the file or leave parent "
            "empty"),
        (6, "name: 'core-1' is already used on line 2; device names must be unique"),
        (7, "snmp_version: 'v1' is not a supported SNMP version; use 2c or 3, or leave it empty to not poll SNMP"),
        (7, "snmp_port: 0 is out of range; use 1 to 65535 (a UDP port)"),
        (7, "ip: '10.0.0.1' is already the address of 'core-1' on line 2; each device needs its own address"),
    ]
    assert exc_info.value.bad_lines == 5
    assert _table_counts(db) == {"devices": 0, "sites": 0, "device_groups": 0, "tags": 0, "device_tags": 0}


def test_cells_escaped_by_the_csv_writer_import_as_they_were(session: Session, org: uuid.UUID,
                                                            db: psycopg.Connection, tmp_path: Path) -> None:
    """A description may start like a formula (a name may not): the one CSV writer of every export writes
    it behind an apostrophe, and the import reads it back as it was."""
    import io

    from netpulse.csvfile import write_csv

    out = io.StringIO()
    write_csv(out, ["name", "address", "type", "description"],
              [["core-1", "10.0.0.1", "router", "=1+1 uplinks"], ["core-2", "10.0.0.2", "router", "-48V feed"]])
    assert "'=1+1 uplinks" in out.getvalue()
    import_devices_csv(session, org, out.getvalue())
    session.commit()
    assert db.execute("SELECT name, description FROM devices ORDER BY name").fetchall() == [
        ("core-1", "=1+1 uplinks"), ("core-2", "-48V feed")]


def test_missing_file_is_one_clear_error(session: Session, org: uuid.UUID, tmp_path: Path) -> None:
    from netpulse.errors import ValidationError

    with pytest.raises(ValidationError, match=r"cannot read .*nope\.csv: No such file or directory"):
        import_devices_csv(session, org, tmp_path / "nope.csv")


# --- the CLI -----------------------------------------------------------------------------------------

SEVERAL_STDERR = [
    "line 3: ip: '10.0.0.256' is not a valid IP address or hostname",
    f"line 4: type: 'fridge' is not a device type; use one of: {TYPES}",
    "line 5: parent: 'core-9' is neither in this file nor in the database; add it to the file or leave parent "
    "empty",
    "line 6: name: 'core-1' is already used on line 2; device names must be unique",
    "line 7: snmp_version: 'v1' is not a supported SNMP version; use 2c or 3, or leave it empty to not poll SNMP",
    "line 7: snmp_port: 0 is out of range; use 1 to 65535 (a UDP port)",
    "line 7: ip: '10.0.0.1' is already the address of 'core-1' on line 2; each device needs its own address",
]


def test_cli_import_bad_file(org: uuid.UUID, db: psycopg.Connection, settings_env: None) -> None:
    path = DATA / "invalid-several.csv"
    result = CliRunner().invoke(main, ["devices", "import", str(path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        *SEVERAL_STDERR, f"Error: 5 bad line(s) in {path}; nothing was imported"]
    assert result.stdout == ""
    assert _device_names(db) == set()


def test_cli_import_good_file_and_dry_run(org: uuid.UUID, db: psycopg.Connection, settings_env: None) -> None:
    path = str(DATA / "valid-devices.csv")
    dry = CliRunner().invoke(main, ["devices", "import", path, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout == ("dry run: 5 device(s) would be imported, creating 2 site(s), 3 group(s), 5 tag(s); "
                          "nothing was written\n")
    assert _device_names(db) == set()
    result = CliRunner().invoke(main, ["devices", "import", path, "--org", "acme"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "imported 5 device(s); created 2 site(s), 3 group(s), 5 tag(s)\n"
    assert _device_names(db) == {"access-1", "access-2", "core-1", "edge-fw", "srv-1"}


def test_cli_import_needs_org_when_there_are_several(org: uuid.UUID, db: psycopg.Connection,
                                                     settings_env: None) -> None:
    make_org(db, "globex")
    path = str(DATA / "valid-devices.csv")
    result = CliRunner().invoke(main, ["devices", "import", path])
    assert result.exit_code == 1
    assert result.stderr == ("Error: the database holds several organizations (acme, globex); choose one with "
                             "--org SLUG\n")
    result = CliRunner().invoke(main, ["devices", "import", path, "--org", "initech"])
    assert result.exit_code == 1
    assert result.stderr == "Error: no organization with slug 'initech'; known: acme, globex\n"
    assert _device_names(db) == set()


def _run(db_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETPULSE_")}
    env["NETPULSE_DATABASE_URL"] = db_url
    env["NETPULSE_ENCRYPTION_KEY"] = TEST_ENCRYPTION_KEY  # communities are stored encrypted
    return subprocess.run([str(NETPULSE), "devices", *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)


def test_subprocess_import_bad_file(db_url: str, org: uuid.UUID, db: psycopg.Connection, tmp_path: Path) -> None:
    path = DATA / "invalid-several.csv"
    proc = _run(db_url, tmp_path, "import", str(path))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [*SEVERAL_STDERR, f"Error: 5 bad line(s) in {path}; nothing was imported"]
    assert proc.stdout == ""
    assert _device_names(db) == set()


def test_subprocess_import_good_file(db_url: str, org: uuid.UUID, db: psycopg.Connection, tmp_path: Path) -> None:
    proc = _run(db_url, tmp_path, "import", str(DATA / "valid-devices.csv"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "imported 5 device(s); created 2 site(s), 3 group(s), 5 tag(s)\n"
    assert _device_names(db) == {"access-1", "access-2", "core-1", "edge-fw", "srv-1"}
    again = _run(db_url, tmp_path, "import", str(DATA / "valid-devices.csv"))
    assert again.returncode == 1
    assert again.stderr.splitlines()[-1].startswith("Error: 5 bad line(s) in ")
    assert len(_device_names(db)) == 5
