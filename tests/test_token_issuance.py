"""Token issuance is idempotent like every POST: a retried request with the same Idempotency-Key
gets the first answer (secret included) byte for byte within 24 h; the secret is stored only
hashed for authentication and, for replays, encrypted; after 24 h a retry gets 409."""

from __future__ import annotations

import psycopg

from tests.support.server import LiveServer, bearer, expect, seed_tenant


def test_a_retried_issuance_returns_the_same_token(live_server: LiveServer) -> None:
    tenant = seed_tenant(live_server, "tokens-clinic")
    path = f"/v1/admin/tenants/{tenant.tenant_id}/tokens"
    headers = {**live_server.admin_headers, "Idempotency-Key": "issue-1"}
    with live_server.client() as client:
        first = client.post(path, json={"role": "staff"}, headers=headers)
        again = client.post(path, json={"role": "staff"}, headers=headers)
        other = client.post(path, json={"role": "agent"}, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert other.status_code == 422
        assert other.json()["type"] == "/problems/idempotency-key-reuse"
        token = first.json()["token"]
        expect(
            client.post(
                "/v1/staff/patients",
                headers=bearer(token),
                json={"patient_ref": "p-1", "name": "A B"},
            ),
            201,
        )

    with psycopg.connect(live_server.settings.admin_database_url) as conn:
        rows = conn.execute("SELECT token_hash, replay FROM booking_tokens").fetchall()
    stored = b"".join(bytes(h) + bytes(r or b"") for h, r in rows)
    assert token.encode() not in stored  # neither the hash column nor the replay holds it clear

    live_server.clock.advance(hours=25)
    with live_server.client() as client:
        late = client.post(path, json={"role": "staff"}, headers=headers)
    assert late.status_code == 409, late.text
    assert late.json()["type"] == "/problems/token-already-issued"
    assert token not in late.text
