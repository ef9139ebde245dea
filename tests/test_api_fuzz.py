"""schemathesis against the served OpenAPI document (GET /schema/openapi.json), every operation.

Each operation gets generated requests, valid and invalid, with a valid token of the role its
path needs (so they get past 401 to the handler): zero 5xx, every answer's status listed for that
operation, its content type and body as the document says.

CI runs a few examples per operation (``BOOKING_FUZZ_EXAMPLES``, default 6 valid and 6 invalid);
``tests/fuzz-api [EXAMPLES]`` runs this module alone with many more (default 200).

schemathesis's own pytest loader (``schemathesis.pytest.from_fixture``) sets ``Function._nodeid``,
which pytest 9.2 no longer has; so each operation is a parametrized test here, and its cases come
from schemathesis's Python API (``schema[path][method].as_strategy()``) under hypothesis.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from booking.settings import Settings
from tests.support.server import (
    ADMIN_TOKEN,
    LiveServer,
    Tenant,
    bearer,
    seed_tenant,
    setup_practice,
)

EXAMPLES = int(os.environ.get("BOOKING_FUZZ_EXAMPLES", "6"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
METHODS = ("get", "put", "post", "delete", "patch")


def documented_operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation the app documents; nothing is served or connected."""
    app = create_app(Settings.from_env({"BOOKING_HOME": "/nonexistent"}))
    paths = app.openapi_schema.paths or {}
    return sorted(
        (method.upper(), path)
        for path, item in paths.items()
        for method in METHODS
        if getattr(item, method, None) is not None
    )


OPERATIONS = documented_operations()


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer) -> Tenant:
    tenant = seed_tenant(live_server, "fuzz-clinic")
    setup_practice(live_server, tenant, patients=("pat-1", "pat-2"))
    return tenant


@pytest.fixture(scope="module")
def role_headers(tenant: Tenant) -> dict[str, dict[str, str]]:
    """A valid token for each path prefix (the platform admin's for /v1/admin)."""
    return {
        "/v1/admin/": bearer(ADMIN_TOKEN),
        "/v1/staff/": tenant.staff_headers,
        "/v1/agent/": tenant.agent_headers,
        "/v1/portal/": tenant.token("patient", patient_ref="pat-1"),
        "/v1/audit": tenant.token("auditor"),
    }


@pytest.fixture(scope="module")
def api_schema(live_server: LiveServer, tenant: Tenant) -> Any:
    """The document as served, loaded by schemathesis."""
    return schemathesis.openapi.from_url(f"{live_server.base_url}/schema/openapi.json")


def near_min_position(case: Any) -> Any:
    """A ``min_position`` past the log's end waits 2 s and then answers 503 read-model-behind, as
    the contract says (tests/test_views.py holds that); a reachable one keeps the fuzz fast."""
    query = case.query or {}
    value = query.get("min_position")
    if isinstance(value, int) and not isinstance(value, bool) and value > 1:
        query["min_position"] = 1
    # a "wrong type" example can still be a number on the wire: "5000" is the query's 5000
    if isinstance(value, str) and value.strip().lstrip("+").isdigit() and int(value) > 1:
        query["min_position"] = "1"
    return case


def test_every_served_operation_is_fuzzed(api_schema: Any) -> None:
    served = sorted(
        (operation.method.upper(), operation.path)
        for operation in (result.ok() for result in api_schema.get_all_operations())
    )
    assert served == OPERATIONS


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_answers_within_its_documented_contract(
    api_schema: Any, role_headers: dict[str, dict[str, str]], method: str, path: str
) -> None:
    operation = api_schema[path][method]
    headers = next((h for prefix, h in role_headers.items() if path.startswith(prefix)), {})
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ).map(near_min_position)

    @given(case=cases)
    @settings(
        max_examples=2 * EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def call(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    call()
