"""What an LLM and an integrator are told: the agent tool definitions (OpenAI and Anthropic
formats) describe exactly what the routes accept, and the OpenAPI document lists every route with
its real status codes (422, never 400, for invalid bodies)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest

from api import schemas as s
from tests.booking_helpers import assert_problem, error_fields
from tests.support.server import LiveServer, Tenant, expect, seed_tenant

# tool name → (request struct of the route's body or None, path parameters)
TOOLS: dict[str, tuple[type[msgspec.Struct] | None, set[str]]] = {
    "check_availability": (s.AvailabilityIn, set()),
    "hold_slot": (s.HoldIn, set()),
    "book_appointment": (s.BookingIn, set()),
    "verify_confirmation": (None, {"confirmation_code"}),
    "reschedule_appointment": (s.RescheduleIn, {"appointment_id"}),
    "cancel_appointment": (s.AgentCancelIn, {"appointment_id"}),
    "list_patient_appointments": (None, {"patient_ref"}),
    "start_call": (s.CallIn, set()),
    "check_utterance": (s.UtteranceIn, {"call_id"}),
    "end_call": (s.CallEndIn, {"call_id"}),
}

# Every route of the contract's Conventions, Platform admin, Staff setup, Agent tools and Calls
# sections.
CONTRACT_ROUTES = [
    ("get", "/health"),
    ("get", "/ready"),
    ("post", "/v1/admin/tenants"),
    ("post", "/v1/admin/tenants/{tenant_id}/tokens"),
    ("post", "/v1/staff/providers"),
    ("post", "/v1/staff/appointment-types"),
    ("put", "/v1/staff/providers/{provider_id}/weekly-hours"),
    ("post", "/v1/staff/patients"),
    ("get", "/v1/agent/tools"),
    ("post", "/v1/agent/availability"),
    ("post", "/v1/agent/holds"),
    ("post", "/v1/agent/bookings"),
    ("get", "/v1/agent/confirmations/{confirmation_code}"),
    ("post", "/v1/agent/appointments/{appointment_id}/reschedule"),
    ("post", "/v1/agent/appointments/{appointment_id}/cancel"),
    ("get", "/v1/agent/patients/{patient_ref}/appointments"),
    ("post", "/v1/agent/calls"),
    ("post", "/v1/agent/calls/{call_id}/utterances"),
    ("post", "/v1/agent/calls/{call_id}/end"),
    ("get", "/v1/staff/call-economics"),
]

SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "tools-clinic")


def tools(server: LiveServer, tenant: Tenant, fmt: str) -> list[dict[str, Any]]:
    with server.client() as client:
        answer = expect(
            client.get("/v1/agent/tools", params={"format": fmt}, headers=tenant.agent_headers), 200
        )
    assert isinstance(answer, list)
    return answer


def resolve(schema: Any, defs: dict[str, Any]) -> Any:
    """``schema`` with every ``$ref`` inlined and ``title`` annotations dropped."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return resolve(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
        return {k: resolve(v, defs) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [resolve(v, defs) for v in schema]
    return schema


def body_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    schema = msgspec.json.schema(struct)
    return resolve(schema, schema.get("$defs", {}))


def sentences(text: str) -> int:
    return len(SENTENCE_END.findall(text.strip()))


def by_name(definitions: list[dict[str, Any]], fmt: str) -> dict[str, dict[str, Any]]:
    """name → {description, parameters} from either envelope."""
    found: dict[str, dict[str, Any]] = {}
    for item in definitions:
        if fmt == "openai":
            assert set(item) == {"type", "function"}, item
            assert item["type"] == "function"
            function = item["function"]
            assert {"name", "description", "parameters"} <= set(function), function
            found[function["name"]] = {
                "description": function["description"],
                "parameters": function["parameters"],
            }
        else:
            assert {"name", "description", "input_schema"} <= set(item), item
            assert "function" not in item and "parameters" not in item, item
            found[item["name"]] = {
                "description": item["description"],
                "parameters": item["input_schema"],
            }
    assert len(found) == len(definitions), "tool names must be unique"
    return found


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
def test_every_agent_tool_comes_in_the_formats_envelope(
    live_server: LiveServer, tenant: Tenant, fmt: str
) -> None:
    definitions = by_name(tools(live_server, tenant, fmt), fmt)
    assert set(definitions) == set(TOOLS)
    for name, definition in definitions.items():
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name)
        description = definition["description"]
        assert isinstance(description, str) and description.strip()
        assert 1 <= sentences(description) <= 2, (name, description)
        assert len(description) <= 400, (name, description)


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
def test_tool_parameters_are_exactly_what_the_route_accepts(
    live_server: LiveServer, tenant: Tenant, fmt: str
) -> None:
    definitions = by_name(tools(live_server, tenant, fmt), fmt)
    for name, (struct, path_params) in TOOLS.items():
        parameters = definitions[name]["parameters"]
        assert parameters["type"] == "object", (name, parameters)
        assert parameters.get("additionalProperties") is False, (name, parameters)
        properties = parameters["properties"]
        required = set(parameters.get("required", []))

        body = body_schema(struct) if struct is not None else {"properties": {}, "required": []}
        assert set(properties) == set(body["properties"]) | path_params, (name, sorted(properties))
        for field, schema in body["properties"].items():
            assert properties[field] == schema, (name, field, properties[field], schema)
        assert required == set(body.get("required", [])) | path_params, (name, required)
        for param in path_params:
            assert properties[param].get("type") == "string", (name, param)
        assert "$ref" not in str(parameters), (name, "refs must be inlined for tool APIs")


def test_both_formats_describe_the_same_tools(live_server: LiveServer, tenant: Tenant) -> None:
    openai = by_name(tools(live_server, tenant, "openai"), "openai")
    anthropic = by_name(tools(live_server, tenant, "anthropic"), "anthropic")
    assert openai == anthropic


def test_tools_need_a_token_and_a_known_format(live_server: LiveServer, tenant: Tenant) -> None:
    with live_server.client() as client:
        assert_problem(client.get("/v1/agent/tools"), 401)
        problem = assert_problem(
            client.get("/v1/agent/tools", params={"format": "xml"}, headers=tenant.agent_headers),
            422,
        )
        default = client.get("/v1/agent/tools", headers=tenant.agent_headers)
    assert "format" in error_fields(problem), problem
    assert default.status_code == 200, default.text


@pytest.fixture(scope="module")
def openapi(live_server: LiveServer) -> dict[str, Any]:
    with live_server.client() as client:
        response = client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["openapi"].startswith("3.")
    return document


def test_the_openapi_document_lists_every_contract_route(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    missing = [f"{m.upper()} {p}" for m, p in CONTRACT_ROUTES if m not in paths.get(p, {})]
    assert not missing, missing


def test_post_and_put_routes_document_422_never_400(openapi: dict[str, Any]) -> None:
    for path, item in openapi["paths"].items():
        for method in ("post", "put"):
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation["responses"]
            assert "400" not in responses, (method, path, sorted(responses))
            assert "422" in responses, (method, path, sorted(responses))
            assert "application/problem+json" in responses["422"].get("content", {}), (
                method,
                path,
                responses["422"],
            )


def test_v1_routes_document_their_refusals(openapi: dict[str, Any]) -> None:
    for method, path in CONTRACT_ROUTES:
        if not path.startswith("/v1/"):
            continue
        responses = openapi["paths"][path][method]["responses"]
        assert {"401", "403"} <= set(responses), (method, path, sorted(responses))
        assert "400" not in responses, (method, path, sorted(responses))
        if method in ("post", "put"):
            assert "413" in responses, (method, path, sorted(responses))
    decisions = [
        "/v1/agent/holds",
        "/v1/agent/bookings",
        "/v1/agent/appointments/{appointment_id}/reschedule",
        "/v1/agent/appointments/{appointment_id}/cancel",
    ]
    for path in decisions:
        responses = openapi["paths"][path]["post"]["responses"]
        assert {"404", "409", "503"} <= set(responses), (path, sorted(responses))
    assert "409" in openapi["paths"]["/v1/admin/tenants"]["post"]["responses"]
    assert "201" in openapi["paths"]["/v1/agent/bookings"]["post"]["responses"]
    confirmation = openapi["paths"]["/v1/agent/confirmations/{confirmation_code}"]["get"]
    assert "404" in confirmation["responses"]
