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


def test_a_revoked_token_stops_working_within_a_second(live_server: LiveServer) -> None:
    import os
    import subprocess
    import sys
    import time

    tenant = seed_tenant(live_server, "revoke-clinic")
    with live_server.client() as client:
        issued = expect(
            client.post(
                f"/v1/admin/tenants/{tenant.tenant_id}/tokens",
                json={"role": "agent"},
                headers=live_server.admin_headers,
            ),
            201,
        )
        headers = bearer(issued["token"])
        expect(client.get("/v1/agent/tools", headers=headers), 200)
        env = {
            **os.environ,
            "BOOKING_DATABASE_URL": live_server.settings.database_url,
            "BOOKING_ADMIN_DATABASE_URL": live_server.settings.admin_database_url,
            "BOOKING_CIPHER_KEY": live_server.settings.cipher_key,
        }
        command = [sys.executable, "-m", "booking.cli", "tokens", "revoke", issued["token_id"]]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 1 and "no live token" in again.stderr
        time.sleep(1.1)  # the token cache's lifetime
        refused = client.get("/v1/agent/tools", headers=headers)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
