"""Regressions from review: an event committed while a rebuild swaps is not lost; a failed
audit write does not turn a committed answer into a bare 500; ids a client makes up never
start audit chains or crash the audit hook; a revoked token's secret is not replayed."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from booking.store import open_store
from projections.appointments import PORTAL
from projections.rebuild import Rebuilder
from tests.booking_helpers import open_slots
from tests.support.server import LiveServer, expect, seed_tenant, setup_practice


def test_an_event_committed_during_the_swap_reaches_the_rebuilt_view(
    live_server: LiveServer,
) -> None:
    tenant = seed_tenant(live_server, "swap-clinic")
    practice = setup_practice(live_server, tenant)
    with live_server.client() as client:
        slots = open_slots(client, tenant, practice, days_from=2)
    store = open_store(live_server.settings.database_url, live_server.settings.cipher_key)
    booked: list[dict[str, Any]] = []
    real_max = store.recorder.max_notification_id

    def book_then_read_max() -> Any:  # an event lands just before the swap reads the log's end
        if not booked:
            with live_server.client() as client:
                booked.append(
                    expect(
                        client.post(
                            "/v1/agent/bookings",
                            headers=tenant.agent_headers,
                            json={"patient_ref": "pat-2", "slot_id": slots[0]["slot_id"]},
                        ),
                        201,
                    )
                )
        return real_max()

    store.recorder.max_notification_id = book_then_read_max  # type: ignore[method-assign]
    try:
        role = str(conninfo_to_dict(live_server.settings.database_url)["user"])
        Rebuilder(store, live_server.settings.admin_database_url, role).rebuild(PORTAL)
    finally:
        store.close()
    assert booked, "the swap never read the end of the log"
    with live_server.client() as client:
        rows = expect(
            client.get(
                "/v1/portal/appointments",
                headers=tenant.token("patient", patient_ref="pat-2"),
                params={"min_position": booked[0]["evidence"]["position"]},
            ),
            200,
        )["appointments"]
    assert [r["appointment_id"] for r in rows] == [booked[0]["appointment_id"]]


@pytest.mark.parametrize("tenant_id", ["aud%00x", "x" * 300])
def test_made_up_tenant_ids_in_admin_paths_are_404_and_file_nothing(
    live_server: LiveServer, tenant_id: str
) -> None:
    with live_server.client() as client:
        answer = client.post(
            f"/v1/admin/tenants/{tenant_id}/tokens",
            json={"role": "staff"},
            headers=live_server.admin_headers,
        )
    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


def test_a_failed_audit_write_keeps_the_true_answer_and_is_logged(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A read's entry, written by the audit writer after the answer is known. (A command's
    entry is part of its save: a change is never stored without it.)"""
    tenant = seed_tenant(live_server, "audit-down-clinic")
    audit = live_server_services(live_server).audit
    real_append = audit.append_async

    async def broken(**_: Any) -> None:
        raise RuntimeError("audit store down")

    caplog.set_level(logging.ERROR, logger="booking.audit")
    with live_server.client() as client:
        expect(
            client.post(
                "/v1/staff/patients",
                headers=tenant.staff_headers,
                json={"patient_ref": "zz1", "name": "Z Z"},
            ),
            201,
        )
        audit.append_async = broken  # type: ignore[method-assign]
        try:
            answer = client.get("/v1/staff/patients/zz1/timeline", headers=tenant.staff_headers)
        finally:
            audit.append_async = real_append  # type: ignore[method-assign]
    assert answer.status_code == 200, answer.text
    assert "audit entry LOST" in caplog.text
    assert "Z Z" not in caplog.text


def live_server_services(server: LiveServer) -> Any:
    return server.app.state.services


def test_a_revoked_tokens_secret_is_not_replayed(live_server: LiveServer) -> None:
    tenant = seed_tenant(live_server, "replay-revoked")
    path = f"/v1/admin/tenants/{tenant.tenant_id}/tokens"
    headers = {**live_server.admin_headers, "Idempotency-Key": "k-revoke"}
    with live_server.client() as client:
        first = expect(client.post(path, json={"role": "agent"}, headers=headers), 201)
        services = live_server_services(live_server)
        from uuid import UUID

        assert services.tokens.revoke(UUID(first["token_id"]))
        again = client.post(path, json={"role": "agent"}, headers=headers)
    assert again.status_code == 409, again.text
    assert first["token"] not in again.text
