"""Property-based requests to every operation of the OpenAPI document (schemathesis, on Hypothesis):
valid and invalid parameters and bodies, as an admin, on random ids and on real objects. No answer is
a 500, every answer matches the document, and a refused write leaves every table as it was.

Kept small for CI: a fixed number of examples per operation, derandomized (the same cases every run).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.apiworld import World, module_world, row_counts, served_document

EXAMPLES = 6
SCHEMA = schemathesis.openapi.from_dict(served_document())
# Not fuzzed, and why.
EXCLUDED = {
    "test_channel": "sends a notification to whatever URL a generated channel holds: traffic leaves the machine",
}
# Signing out and changing the password end the caller's sessions: they get a token of their own.
OWN_SESSION = {"logout", "change_password"}
OPERATIONS = [(op.method.upper(), op.path, op) for result in SCHEMA.get_all_operations()
              for op in [result.ok()] if op.definition.raw.get("operationId") not in EXCLUDED]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


world = pytest.fixture(scope="module", name="world")(module_world)


def _strategies(op: Any, world: World) -> list[Any]:
    own = op.definition.raw.get("operationId") in OWN_SESSION
    headers = {"Authorization": f"Bearer {world.spare if own else world.alpha.tokens['admin']}"}
    names = [p.name for p in op.path_parameters]
    has_input = bool(names or list(op.query) or op.body)
    out = [op.as_strategy(GenerationMode.POSITIVE, headers=headers)]
    if has_input:
        out.append(op.as_strategy(GenerationMode.NEGATIVE, headers=headers))
    if names and op.method.upper() != "DELETE":  # real objects too (deleting them would starve the rest)
        out.append(op.as_strategy(GenerationMode.POSITIVE, headers=headers,
                                  path_parameters={n: world.alpha.path[n] for n in names}))
    return out


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=[f"{m} {p.removeprefix('/api/v1')}"
                                                                    for m, p, _ in OPERATIONS])
def test_no_500_no_partial_write_and_answers_match_the_document(world: World, db_url: str, method: str, path: str,
                                                                op: Any) -> None:
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(_strategies(op, world)))
    def run(case: Any) -> None:
        before = row_counts(db_url)
        response = case.call(app=world.app)
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:500]}"
        if response.status_code >= 400:
            assert row_counts(db_url) == before, f"{case.method} {case.formatted_path} wrote before failing"
        case.validate_response(response, checks=CHECKS)

    run()


def test_the_excluded_operations_exist() -> None:
    ids = {op.definition.raw.get("operationId") for r in SCHEMA.get_all_operations() for op in [r.ok()]}
    assert set(EXCLUDED) | OWN_SESSION <= ids
