"""The patient timeline: every event about a patient, in log order, for staff and incident review.
Entries name what happened and to which appointment; they carry no patient data (name, phone,
birth date stay encrypted in the event store)."""

from __future__ import annotations

import json
from typing import Any

from psycopg import Cursor

from projections.appointments import BOOKED, RESCHEDULED, STATUS_EVENTS
from projections.base import Apply, Names, Projection, Table

PATIENT_REGISTERED = "booking:Patient.Registered"
HOLD_TAKEN = "booking:Patient.HoldTaken"
HOLD_ENDED = "booking:Patient.HoldEnded"

COLUMNS = """
    position bigint NOT NULL,
    patient_ref text NOT NULL,
    at timestamptz NOT NULL,
    kind text NOT NULL,
    appointment_id uuid,
    details jsonb NOT NULL,
    PRIMARY KEY (tenant_id, position)
"""


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _handlers(names: Names) -> dict[str, Apply]:
    table = names("patient_timeline")
    patients = names("timeline_patients")
    # which patient an appointment or patient id belongs to never changes: remember it, so
    # applying an event rarely has to read (a read would stall the pipelined batch)
    known: dict[Any, str] = {}

    def remember(key: Any, patient_ref: str) -> None:
        if len(known) > 200_000:
            known.clear()
        known[key] = patient_ref

    def add(
        curs: Cursor[Any],
        e: Any,
        position: int,
        patient_ref: str | None,
        kind: str,
        appointment_id: Any,
        details: dict[str, Any],
    ) -> None:
        if patient_ref is None:  # an event about a patient this view never saw registered
            return
        curs.execute(
            f"INSERT INTO {table} (tenant_id, position, patient_ref, at, kind, appointment_id,"
            " details) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                e.tenant_id,
                position,
                patient_ref,
                e.timestamp,
                kind,
                appointment_id,
                json.dumps({k: _iso(v) for k, v in details.items()}, sort_keys=True),
            ),
        )

    def patient_of_appointment(curs: Cursor[Any], appointment_id: Any) -> str | None:
        if appointment_id in known:
            return known[appointment_id]
        curs.execute(
            f"SELECT patient_ref FROM {table} WHERE appointment_id = %s LIMIT 1",
            (appointment_id,),
        )
        row = curs.fetchone()
        return None if row is None else str(row["patient_ref"])

    def patient_ref_of(curs: Cursor[Any], patient_id: Any) -> str | None:
        if patient_id in known:
            return known[patient_id]
        curs.execute(f"SELECT patient_ref FROM {patients} WHERE patient_id = %s", (patient_id,))
        row = curs.fetchone()
        return None if row is None else str(row["patient_ref"])

    def registered(curs: Cursor[Any], e: Any, position: int) -> None:
        remember(e.originator_id, e.patient_ref)
        curs.execute(
            f"INSERT INTO {patients} (tenant_id, patient_id, patient_ref) VALUES (%s, %s, %s)",
            (e.tenant_id, e.originator_id, e.patient_ref),
        )
        add(curs, e, position, e.patient_ref, "registered", None, {"language": e.language})

    def hold_taken(curs: Cursor[Any], e: Any, position: int) -> None:
        add(
            curs,
            e,
            position,
            patient_ref_of(curs, e.originator_id),
            "hold",
            None,
            {"hold_id": e.hold_id, "expires_at": e.expires_at},
        )

    def hold_ended(curs: Cursor[Any], e: Any, position: int) -> None:
        add(
            curs,
            e,
            position,
            patient_ref_of(curs, e.originator_id),
            f"hold-{e.outcome}",
            None,
            {"hold_id": e.hold_id},
        )

    def booked(curs: Cursor[Any], e: Any, position: int) -> None:
        remember(e.originator_id, e.patient_ref)
        add(
            curs,
            e,
            position,
            e.patient_ref,
            "booked",
            e.originator_id,
            {
                "start": e.start,
                "end": e.end,
                "provider_id": e.provider_id,
                "type_id": e.type_id,
                "confirmation_code": e.confirmation_code,
                "call_id": e.call_id,
            },
        )

    def rescheduled(curs: Cursor[Any], e: Any, position: int) -> None:
        add(
            curs,
            e,
            position,
            patient_of_appointment(curs, e.originator_id),
            "rescheduled",
            e.originator_id,
            {
                "start": e.start,
                "end": e.end,
                "provider_id": e.provider_id,
                "previous_start": e.previous_start,
                "call_id": e.call_id,
            },
        )

    def status(kind: str) -> Apply:
        def changed(curs: Cursor[Any], e: Any, position: int) -> None:
            details: dict[str, Any] = {"by_role": e.by_role}
            if kind == "cancelled":
                # not the free-text reason: it may hold health details; it stays encrypted
                details.update(call_id=e.call_id)
            add(
                curs,
                e,
                position,
                patient_of_appointment(curs, e.originator_id),
                kind,
                e.originator_id,
                details,
            )

        return changed

    handlers: dict[str, Apply] = {
        PATIENT_REGISTERED: registered,
        HOLD_TAKEN: hold_taken,
        HOLD_ENDED: hold_ended,
        BOOKED: booked,
        RESCHEDULED: rescheduled,
    }
    handlers.update({topic: status(kind) for topic, kind in STATUS_EVENTS.items()})
    return handlers


TIMELINE = Projection(
    name="timeline",
    tables=(
        Table(
            "patient_timeline",
            COLUMNS,
            ("(tenant_id, patient_ref, position)", "(tenant_id, appointment_id)"),
        ),
        Table(
            "timeline_patients",
            "patient_id uuid NOT NULL, patient_ref text NOT NULL,"
            " PRIMARY KEY (tenant_id, patient_id)",
        ),
    ),
    make_handlers=_handlers,
)


def timeline_rows(curs: Cursor[Any], patient_ref: str, limit: int) -> list[dict[str, Any]]:
    curs.execute(
        "SELECT position, at, kind, appointment_id, details FROM patient_timeline"
        " WHERE patient_ref = %s ORDER BY position LIMIT %s",
        (patient_ref, limit),
    )
    return list(curs.fetchall())
