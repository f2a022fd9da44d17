"""Every Dash callback checks the permission of the API route that serves the same data, per role.

A callback can be called without its page or its button: any signed-in user may POST to
``/_dash-update-component``. These tests do exactly that, with each role's bearer token (as an API
client would), and check that a role lacking the permission gets a 403 and no data, and that the
roles holding it change what the callback says it changes.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from dashboard import ids
from dashboard.app import create_app
from dashboard.permissions import PERMISSION_ATTR
from dashboard.topology import elements
from netpulse.config import load_settings
from netpulse.db import make_engine
from netpulse.schema import Role
from tests.conftest import REDIS_URL, truncate_all
from tests.noc_data import PASSWORD, NocData, email, seed_noc

SECRET = "permission-test-secret-0123456789abcdef"
WRITERS = {"device:write": (Role.ADMIN, Role.OPERATOR), "alert:write": (Role.ADMIN, Role.OPERATOR),
           "report:write": (Role.ADMIN, Role.OPERATOR)}


@pytest.fixture(scope="module")
def noc(db_url: str) -> Iterator[NocData]:
    truncate_all(db_url)
    yield seed_noc(db_url, devices=24)
    truncate_all(db_url)


@pytest.fixture(scope="module")
def app(db_url: str, noc: NocData) -> Iterator[Flask]:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()  # no login limit left over from earlier tests
    engine = make_engine(db_url, pool_size=2, max_overflow=2)
    yield create_app(load_settings(database_url=db_url, redis_url=REDIS_URL, secret_key=SECRET, env="testing"),
                     engine=engine)
    engine.dispose()


def _token(client: FlaskClient, role: Role) -> str:
    answer = client.post("/api/v1/auth/login", json={"email": email(role), "password": PASSWORD})
    assert answer.status_code == 200, answer.get_json()
    return str(answer.get_json()["data"]["access_token"])


@pytest.fixture(scope="module")
def tokens(app: Flask) -> dict[Role, str]:
    client = app.test_client()
    return {role: _token(client, role) for role in (Role.ADMIN, Role.OPERATOR, Role.VIEWER, Role.API_USER)}


def _callbacks(app: Flask) -> dict[str, dict[str, Any]]:
    dash_app = app.extensions["netpulse.dash"]
    return {key: spec for key, spec in dash_app.callback_map.items() if "callback" in spec}


def _key(app: Flask, name: str) -> str:
    """The callback named ``name``, or ``page.name`` where two pages use one name."""
    page, _, fn = name.rpartition(".")
    found = [k for k, spec in _callbacks(app).items() if spec["callback"].__name__ == fn
             and (not page or spec["callback"].__module__.endswith(f".{page}"))]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def _dep(dep: dict[str, Any], values: dict[str, Any]) -> Any:
    """One input or state as the renderer sends it: a wildcard one matches no component here."""
    if isinstance(dep["id"], dict) and any(not isinstance(v, str | int) for v in dep["id"].values()):
        return []
    return {"id": dep["id"], "property": dep["property"], "value": values.get(f"{dep['id']}.{dep['property']}")}


def call(app: Flask, token: str, name: str, values: dict[str, Any] | None = None) -> Any:
    """POST one callback as Dash's renderer would; ``values``: "id.property" -> value (default None)."""
    values = values or {}
    key = _key(app, name)
    spec = _callbacks(app)[key]
    def out(o: Any) -> Any:
        if isinstance(o.component_id, dict) and any(not isinstance(v, str | int) for v in o.component_id.values()):
            return []
        return {"id": o.component_id, "property": o.component_property}

    outputs = [out(o) for o in spec["output"]] if isinstance(spec["output"], list) else out(spec["output"])

    def fill(dep: dict[str, Any]) -> Any:
        return _dep(dep, values)

    inputs = [fill(d) for d in spec["inputs"]]
    body = {"output": key, "outputs": outputs, "inputs": inputs, "state": [fill(d) for d in spec["state"]],
            "changedPropIds": [f"{spec['inputs'][0]['id']}.{spec['inputs'][0]['property']}"] if spec["inputs"]
            else []}
    return app.test_client().post("/_dash-update-component", json=body,
                                  headers={"Authorization": f"Bearer {token}"})


def test_every_callback_names_a_permission(app: Flask) -> None:
    unguarded = [spec["callback"].__name__ for spec in _callbacks(app).values()
                 if getattr(spec["callback"], PERMISSION_ATTR, None) is None
                 and spec["callback"].__name__ != "update"]  # Dash's own page router
    assert unguarded == []


@pytest.mark.parametrize("name", ["open_form", "save", "ask_delete", "delete", "import_csv", "act",
                                  "bulk_acknowledge", "generate", "add_schedule", "schedule_action", "ask_for_pdf"])
def test_callbacks_that_change_data_refuse_viewers_and_api_users(app: Flask, tokens: dict[Role, str],
                                                                 name: str) -> None:
    permission = getattr(_callbacks(app)[_key(app, name)]["callback"], PERMISSION_ATTR)
    assert permission in WRITERS
    for role in (Role.VIEWER, Role.API_USER):
        answer = call(app, tokens[role], name)
        assert answer.status_code == 403, (role, answer.status_code)
        assert "lacks" in answer.get_data(as_text=True)


ALERT_READERS = ["alerts.refresh_kpis", "alerts.refresh_chart", "alerts.refresh_table", "alerts.refresh_detail",
                 "alerts.select_alert", "overview.refresh_open_alerts", "device.refresh_alerts"]


@pytest.mark.parametrize("name", ALERT_READERS)
def test_an_api_user_cannot_read_alerts_through_the_pages(app: Flask, tokens: dict[Role, str], name: str) -> None:
    """GET /api/v1/alerts is refused to api_user (403); so is every callback that shows alerts."""
    client = app.test_client()
    assert client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {tokens[Role.API_USER]}"}
                      ).status_code == 403
    answer = call(app, tokens[Role.API_USER], name)
    assert answer.status_code == 403
    assert "alert" not in answer.get_data(as_text=True).replace("alert:read", "")


def test_a_viewer_reads_the_alert_groups(app: Flask, tokens: dict[Role, str], noc: NocData) -> None:
    answer = call(app, tokens[Role.VIEWER], "alerts.refresh_table", {
        f"{ids.ALERTS_SEVERITY_FILTER}.value": list(ids.ALERT_SEVERITIES), f"{ids.ALERTS_STATUS_FILTER}.value": "open",
        f"{ids.ALERTS_PAGE}.active_page": 1})
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    assert noc.parent in text and f"suppressed alerts of devices behind {noc.parent}" in text


def _group_ids(app: Flask, token: str) -> dict[str, list[str]]:
    answer = call(app, token, "alerts.refresh_table", {
        f"{ids.ALERTS_SEVERITY_FILTER}.value": list(ids.ALERT_SEVERITIES), f"{ids.ALERTS_STATUS_FILTER}.value": "open",
        f"{ids.ALERTS_PAGE}.active_page": 1})
    groups: dict[str, list[str]] = answer.get_json()["response"][ids.ALERTS_GROUP_IDS]["data"]
    return groups


def test_an_operator_acknowledges_a_whole_group(app: Flask, tokens: dict[Role, str], noc: NocData,
                                                db_url: str) -> None:
    groups = _group_ids(app, tokens[Role.OPERATOR])
    key = f"d{noc.ids[noc.parent]}"
    assert len(groups[key]) == 1 + len(noc.behind)
    pick = {"type": ids.ALERT_PICK, "index": key}
    answer = call(app, tokens[Role.OPERATOR], "bulk_acknowledge", {
        f"{ids.ALERTS_BULK_ACK}.n_clicks": 1, f"{ids.ALERTS_GROUP_IDS}.data": groups})
    assert answer.status_code == 200  # nothing ticked: says so, changes nothing
    assert "Tick the groups" in answer.get_data(as_text=True)
    dash_app = app.extensions["netpulse.dash"]
    spec = dash_app.callback_map[_key(app, "bulk_acknowledge")]
    body = {"output": _key(app, "bulk_acknowledge"),
            "outputs": [{"id": o.component_id, "property": o.component_property} for o in spec["output"]],
            "inputs": [{"id": ids.ALERTS_BULK_ACK, "property": "n_clicks", "value": 1}],
            "state": [[{"id": pick, "property": "value", "value": True}],
                      [{"id": pick, "property": "id", "value": pick}],
                      {"id": ids.ALERTS_GROUP_IDS, "property": "data", "value": groups},
                      {"id": ids.ALERT_VERSION, "property": "data", "value": 0}],
            "changedPropIds": [f"{ids.ALERTS_BULK_ACK}.n_clicks"]}
    answer = app.test_client().post("/_dash-update-component", json=body,
                                    headers={"Authorization": f"Bearer {tokens[Role.OPERATOR]}"})
    assert answer.status_code == 200
    assert f"Acknowledged {1 + len(noc.behind)} alerts in 1 group" in answer.get_data(as_text=True)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT status, acknowledged_by FROM alerts WHERE id = ANY(%s)",
                            ([uuid.UUID(a) for a in groups[key]],)).fetchall()
    assert {r for r in rows} == {("acknowledged", noc.users["operator"])}


def _upload(text: str) -> str:
    return "data:text/csv;base64," + base64.b64encode(text.encode()).decode()


def test_the_import_reports_bad_lines_and_imports_nothing_then_imports_a_good_file(
        app: Flask, tokens: dict[Role, str], db_url: str) -> None:
    def count() -> int:
        with psycopg.connect(db_url) as conn:
            return int(conn.execute("SELECT count(*) FROM devices").fetchone()[0])  # type: ignore[index]

    before = count()
    bad = "name,address,type\nlab-1,192.0.2.10,router\nlab-2,300.1.1.1,router\n"
    answer = call(app, tokens[Role.OPERATOR], "import_csv", {f"{ids.IMPORT_UPLOAD}.contents": _upload(bad),
                                                             f"{ids.IMPORT_UPLOAD}.filename": "lab.csv"})
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "Line 3" in text and "nothing was" in text and "300.1.1.1" in text
    assert count() == before
    good = "name,address,type\nlab-1,192.0.2.10,router\nlab-2,192.0.2.11,switch\n"
    answer = call(app, tokens[Role.ADMIN], "import_csv", {f"{ids.IMPORT_UPLOAD}.contents": _upload(good),
                                                          f"{ids.IMPORT_UPLOAD}.filename": "lab.csv"})
    assert answer.status_code == 200 and "imported 2 device(s)" in answer.get_data(as_text=True)
    assert count() == before + 2


def test_an_operator_adds_edits_and_deletes_a_device(app: Flask, tokens: dict[Role, str], db_url: str) -> None:
    fields = {f"{ids.DEVICE_FIELD[k]}.value": v for k, v in {
        "name": "edge-9", "address": "192.0.2.99", "device_type": "router", "site": "Lab", "group": "",
        "tags": "lab, edge", "parent": "", "snmp_version": "", "snmp_community": "", "description": ""}.items()}
    answer = call(app, tokens[Role.OPERATOR], "save", {f"{ids.DEVICE_SAVE}.n_clicks": 1, **fields})
    assert answer.status_code == 200 and "Added edge-9" in answer.get_data(as_text=True)
    with psycopg.connect(db_url) as conn:
        (dev_id,) = conn.execute("SELECT id FROM devices WHERE name = 'edge-9'").fetchone()  # type: ignore[misc]
    taken = call(app, tokens[Role.OPERATOR], "save", {f"{ids.DEVICE_SAVE}.n_clicks": 1, **fields})
    assert taken.status_code == 200
    assert "already exists" in taken.get_data(as_text=True)  # shown beside the name field
    fields[f"{ids.DEVICE_FIELD['address']}.value"] = "192.0.2.98"
    answer = call(app, tokens[Role.OPERATOR], "save", {f"{ids.DEVICE_SAVE}.n_clicks": 1,
                                                       f"{ids.DEVICE_EDITING}.data": dev_id, **fields})
    assert "Saved edge-9" in answer.get_data(as_text=True)
    selected = [{"id": dev_id, "name": "edge-9"}]
    answer = call(app, tokens[Role.OPERATOR], "delete", {f"{ids.DELETE_CONFIRM}.n_clicks": 1,
                                                         f"{ids.GRID}.selectedRows": selected})
    assert answer.status_code == 200 and "Deleted edge-9" in answer.get_data(as_text=True)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM devices WHERE name = 'edge-9'").fetchone() == (0,)


def test_a_down_subtree_collapses_into_its_cause() -> None:
    nodes = [
        {"id": 1, "name": "core", "parent_id": None, "site": "A", "device_type": "router", "status": "up",
         "cause": None, "behind": 0},
        {"id": 2, "name": "dist", "parent_id": 1, "site": "A", "device_type": "switch", "status": "down",
         "cause": None, "behind": 3},
        *({"id": 10 + i, "name": f"leaf-{i}", "parent_id": 2, "site": "A", "device_type": "server",
           "status": "unreachable", "cause": 2, "behind": 0} for i in range(3)),
        *({"id": 20 + i, "name": f"ap-{i}", "parent_id": 1, "site": "A", "device_type": "access_point",
           "status": "up", "cause": None, "behind": 0} for i in range(20)),
    ]
    els = elements(nodes)
    drawn = {e["data"]["id"]: e for e in els if "source" not in e["data"]}
    assert "dist" in drawn["2"]["data"]["label"] and "+3 behind" in drawn["2"]["data"]["label"]
    assert "cause" in drawn["2"]["classes"]
    assert not any(k in drawn for k in ("10", "11", "12"))       # the unreachable ones fold into it
    assert drawn["fold-1"]["data"]["folded"] == 14                 # 20 up leaves: 6 shown, 14 folded
