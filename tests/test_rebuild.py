"""Rebuilding read models from the log gives exactly the live tables, row for row, after a mixed
history across three tenants; the swap happens under a running worker; status reports lag."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg import sql

from projections.catalog import PROJECTIONS
from tests.booking_helpers import open_slots
from tests.support.server import (
    LiveServer,
    Practice,
    Tenant,
    expect,
    seed_tenant,
    setup_practice,
)

TENANTS = ("rebuild-a", "rebuild-b", "rebuild-c")


def checksum(server: LiveServer) -> dict[str, str]:
    """A digest of every row of every read-model table, tenant by tenant (RLS binds the owner)."""
    digests: dict[str, str] = {}
    with psycopg.connect(server.settings.admin_database_url) as conn:
        for projection in PROJECTIONS:
            for table in projection.tables:
                h = hashlib.sha256()
                for tenant in TENANTS:
                    with conn.transaction():
                        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant,))
                        rows = conn.execute(
                            sql.SQL("SELECT t::text FROM {} t ORDER BY t::text").format(
                                sql.Identifier(table.name)
                            )
                        ).fetchall()
                    h.update(repr(rows).encode())
                digests[table.name] = h.hexdigest()
    return digests


def history(server: LiveServer, tenant: Tenant) -> int:
    """Bookings, reschedules, cancels and staff marks; returns the last position written."""
    practice = setup_practice(server, tenant, patients=("p1", "p2", "p3"))
    last = 0
    with server.client() as client:
        slots = open_slots(client, tenant, practice, days_from=1, days=4)
        booked: list[dict[str, Any]] = []
        for i, patient in enumerate(("p1", "p2", "p3", "p1", "p2")):
            booked.append(
                expect(
                    client.post(
                        "/v1/agent/bookings",
                        headers=tenant.agent_headers,
                        json={"patient_ref": patient, "slot_id": slots[i]["slot_id"]},
                    ),
                    201,
                )
            )
        moved = expect(
            client.post(
                f"/v1/agent/appointments/{booked[0]['appointment_id']}/reschedule",
                headers=tenant.agent_headers,
                json={"slot_id": slots[10]["slot_id"]},
            ),
            200,
        )
        cancelled = expect(
            client.post(
                f"/v1/agent/appointments/{booked[1]['appointment_id']}/cancel",
                headers=tenant.agent_headers,
                json={"reason": "feeling better"},
            ),
            200,
        )
        hold = expect(
            client.post(
                "/v1/agent/holds",
                headers=tenant.agent_headers,
                json={"patient_ref": "p3", "slot_id": slots[12]["slot_id"]},
            ),
            201,
        )
        last = max(
            moved["evidence"]["position"],
            cancelled["evidence"]["position"],
            hold["evidence"]["position"],
        )
    return last


def test_a_rebuild_reproduces_the_live_views(live_server: LiveServer) -> None:
    last = 0
    tenants = [seed_tenant(live_server, t) for t in TENANTS]
    for tenant in tenants:
        last = max(last, history(live_server, tenant))
    # staff marks, after the clock passes an appointment's start
    live_server.clock.advance(days=2)
    with live_server.client() as client:
        for tenant in tenants:
            rows = expect(
                client.get(
                    "/v1/portal/appointments",
                    headers=tenant.token("patient", patient_ref="p3"),
                    params={"min_position": last},
                ),
                200,
            )["appointments"]
            first = rows[0]
            marked = expect(
                client.post(
                    f"/v1/staff/appointments/{first['appointment_id']}/no-show",
                    headers=tenant.staff_headers,
                ),
                200,
            )
            last = max(last, marked["evidence"]["position"])
        for tenant in tenants:  # every view has applied everything
            today = date.today()
            expect(
                client.get(
                    "/v1/staff/appointments",
                    headers=tenant.staff_headers,
                    params={
                        "date_from": str(today),
                        "date_to": str(today + timedelta(days=30)),
                        "min_position": last,
                    },
                ),
                200,
            )
            expect(
                client.get(
                    "/v1/staff/patients/p1/timeline",
                    headers=tenant.staff_headers,
                    params={"min_position": last},
                ),
                200,
            )

    before = checksum(live_server)
    env = {
        **os.environ,
        "BOOKING_DATABASE_URL": live_server.settings.database_url,
        "BOOKING_ADMIN_DATABASE_URL": live_server.settings.admin_database_url,
        "BOOKING_CIPHER_KEY": live_server.settings.cipher_key,
    }
    rebuild = subprocess.run(
        [sys.executable, "-m", "booking.cli", "projections", "rebuild", "--all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rebuild.returncode == 0, rebuild.stderr
    for projection in PROJECTIONS:
        assert f"{projection.name}: " in rebuild.stdout
        assert "ev/s" in rebuild.stderr  # the progress bar
    after = checksum(live_server)
    assert after == before
    assert all(digest != hashlib.sha256(b"").hexdigest() for digest in after.values())

    status = subprocess.run(
        [sys.executable, "-m", "booking.cli", "projections", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    for projection in PROJECTIONS:
        line = next(x for x in status.stdout.splitlines() if x.startswith(projection.name))
        assert line.split()[1:3] == [str(int(line.split()[1])), "0"]  # no lag

    # the live worker goes on applying into the swapped-in tables
    with live_server.client() as client:
        tenant = tenants[2]
        practice = Practice(provider_id="dr-a", type_id="checkup", duration=30, patients=())
        agent = tenant.token("agent")  # the clock moved past the first agent token's hour
        slot = open_slots(client, tenant, practice, days_from=5, headers=agent)[0]
        booked = expect(
            client.post(
                "/v1/agent/bookings",
                headers=agent,
                json={"patient_ref": "p2", "slot_id": slot["slot_id"]},
            ),
            201,
        )
        rows = expect(
            client.get(
                "/v1/portal/appointments",
                headers=tenant.token("patient", patient_ref="p2"),
                params={"min_position": booked["evidence"]["position"]},
            ),
            200,
        )["appointments"]
    assert booked["appointment_id"] in {r["appointment_id"] for r in rows}
