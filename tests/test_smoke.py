"""The app starts against a fresh database, answers health checks and the first admin call."""

from __future__ import annotations

from tests.support.server import LiveServer


def test_health_answers_without_a_token(live_server: LiveServer) -> None:
    with live_server.client() as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_admin_creates_a_tenant_once(live_server: LiveServer) -> None:
    body = {"tenant_id": "smoke-clinic", "name": "Smoke Clinic", "timezone": "America/New_York"}
    with live_server.client() as client:
        created = client.post("/v1/admin/tenants", json=body, headers=live_server.admin_headers)
        again = client.post("/v1/admin/tenants", json=body, headers=live_server.admin_headers)

    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in body} == body

    assert again.status_code == 409, again.text
    assert again.headers["content-type"].startswith("application/problem+json")
    problem = again.json()
    assert problem["status"] == 409
    assert problem["type"].startswith("/problems/")
    assert problem["title"] and problem["detail"]
