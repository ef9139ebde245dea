"""Patient data (name, phone, birth date) is encrypted in the event store and written to no log,
while the API still answers with it to the staff who registered it."""

from __future__ import annotations

import json
import logging
import zlib

import psycopg
import pytest

from tests.booking_helpers import open_slots
from tests.support.server import LiveServer, expect, seed_tenant, setup_practice

NAME = "Zebulon Quixotic-Marchetti"
PHONE = "+1 555 867 5309"
BIRTH_DATE = "1961-04-17"


def test_phi_is_encrypted_at_rest_and_never_logged(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tenant = seed_tenant(live_server, "phi-clinic")
    practice = setup_practice(live_server, tenant, patients=())
    with live_server.client() as client:
        stored = expect(
            client.post(
                "/v1/staff/patients",
                json={
                    "patient_ref": "pat-z",
                    "name": NAME,
                    "phone": PHONE,
                    "birth_date": BIRTH_DATE,
                },
                headers=tenant.staff_headers,
            ),
            201,
        )
        assert (stored["name"], stored["phone"], stored["birth_date"]) == (NAME, PHONE, BIRTH_DATE)
        slot = open_slots(client, tenant, practice, days_from=2)[0]
        expect(
            client.post(
                "/v1/agent/bookings",
                json={"patient_ref": "pat-z", "slot_id": slot["slot_id"]},
                headers=tenant.agent_headers,
            ),
            201,
        )
        # a request that fails validation echoes nothing of the body into the logs either
        client.post(
            "/v1/staff/patients",
            json={"patient_ref": "pat-y", "name": NAME, "phone": "not a phone"},
            headers=tenant.staff_headers,
        )

    with psycopg.connect(live_server.settings.admin_database_url) as conn:
        rows = conn.execute("SELECT topic, state FROM scheduling_events").fetchall()
        tokens = conn.execute("SELECT * FROM booking_tokens").fetchall()
    assert any(topic == "booking:Patient.Registered" for topic, _ in rows)
    raw = b"".join(bytes(state) for _, state in rows)
    for _, state in rows:  # compression alone would hide the strings too: it must be ciphertext
        with pytest.raises(zlib.error):
            zlib.decompress(bytes(state))
        with pytest.raises(ValueError):
            json.loads(bytes(state))
    for secret in (NAME, PHONE, BIRTH_DATE, "Zebulon", "867 5309"):
        assert secret.encode() not in raw, f"{secret!r} stored in the clear"
        assert secret not in repr(tokens)
        assert secret not in caplog.text, f"{secret!r} written to a log"
