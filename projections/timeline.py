"""The patient timeline: every event about a patient, in log order, for staff and incident review.
Entries name what happened and to which appointment; they carry no patient data (name, phone,
birth date, free-text reasons stay encrypted in the event store)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from psycopg import Cursor

from projections.appointments import BOOKED, RESCHEDULED, STATUS_EVENTS
from projections.base import (
    Apply,
    Columns,
    Event,
    Names,
    Projection,
    Table,
    Writer,
    insert_rows,
    insert_tenant_rows,
)

PATIENT_REGISTERED = "booking:Patient.Registered"
HOLD_TAKEN = "booking:Patient.HoldTaken"
HOLD_ENDED = "booking:Patient.HoldEnded"
TOPICS = (PATIENT_REGISTERED, HOLD_TAKEN, HOLD_ENDED, BOOKED, RESCHEDULED, *STATUS_EVENTS)

COLUMNS = """
    position bigint NOT NULL,
    patient_ref text NOT NULL,
    at timestamptz NOT NULL,
    kind text NOT NULL,
    appointment_id uuid,
    details jsonb NOT NULL,
    PRIMARY KEY (tenant_id, position)
"""
ENTRY = ("tenant_id", "position", "patient_ref", "at", "kind", "appointment_id", "details")
PATIENT = ("tenant_id", "patient_id", "patient_ref")
ENTRY_TYPES: Columns = (
    ("position", "bigint"),
    ("patient_ref", "text"),
    ("at", "timestamptz"),
    ("kind", "text"),
    ("appointment_id", "uuid"),
    ("details", "jsonb"),
)
PATIENT_TYPES: Columns = (("patient_id", "uuid"), ("patient_ref", "text"))
KNOWN_MAX = 200_000


def _json(details: dict[str, Any]) -> str:
    return json.dumps(
        {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in details.items()},
        sort_keys=True,
    )


def entry(
    topic: str, e: Any, position: int, patient_of: Callable[[Any], str | None]
) -> tuple[Any, ...] | None:
    """The timeline row an event makes (None when it names no known patient).

    ``patient_of`` maps a patient id or an appointment id to the patient's reference.
    """
    kind: str
    appointment_id: Any = None
    if topic == PATIENT_REGISTERED:
        patient, kind, details = e.patient_ref, "registered", {"language": e.language}
    elif topic == HOLD_TAKEN:
        patient, kind = patient_of(e.originator_id), "hold"
        details = {"hold_id": e.hold_id, "expires_at": e.expires_at}
    elif topic == HOLD_ENDED:
        patient, kind = patient_of(e.originator_id), f"hold-{e.outcome}"
        details = {"hold_id": e.hold_id}
    elif topic == BOOKED:
        patient, kind, appointment_id = e.patient_ref, "booked", e.originator_id
        details = {
            "start": e.start,
            "end": e.end,
            "provider_id": e.provider_id,
            "type_id": e.type_id,
            "confirmation_code": e.confirmation_code,
            "call_id": e.call_id,
        }
    elif topic == RESCHEDULED:
        patient, kind, appointment_id = patient_of(e.originator_id), "rescheduled", e.originator_id
        details = {
            "start": e.start,
            "end": e.end,
            "provider_id": e.provider_id,
            "previous_start": e.previous_start,
            "call_id": e.call_id,
        }
    elif topic in STATUS_EVENTS:
        patient, kind, appointment_id = (
            patient_of(e.originator_id),
            STATUS_EVENTS[topic],
            e.originator_id,
        )
        details = {"by_role": e.by_role}
        if kind == "cancelled":  # never the free-text reason: it may hold health details
            details["call_id"] = e.call_id
    else:
        return None
    if patient is None:  # an event about a patient this view never saw registered
        return None
    return (e.tenant_id, position, patient, e.timestamp, kind, appointment_id, _json(details))


def _owner(topic: str, e: Any) -> tuple[Any, str] | None:
    """An id whose patient an event fixes for good: a patient's or an appointment's."""
    if topic == PATIENT_REGISTERED:
        return e.originator_id, e.patient_ref
    if topic == BOOKED:
        return e.originator_id, e.patient_ref
    return None


def _lookup(table: str, patients: str) -> str:
    """Which patient an id (a patient's or an appointment's) belongs to, from the rows."""
    return (
        f"SELECT patient_ref FROM {patients} WHERE patient_id = %s"
        f" UNION ALL SELECT patient_ref FROM {table} WHERE appointment_id = %s LIMIT 1"
    )


def _handlers(names: Names) -> dict[str, Apply]:
    table, patients = names("patient_timeline"), names("timeline_patients")
    # which patient an id belongs to never changes: remembering it spares most reads, which
    # would stall the pipelined batch
    known: dict[Any, str] = {}

    def apply(curs: Cursor[Any], topic: str, e: Any, position: int) -> None:
        owner = _owner(topic, e)
        if owner is not None:
            if len(known) > KNOWN_MAX:
                known.clear()
            known[owner[0]] = owner[1]
            if topic == PATIENT_REGISTERED:
                curs.execute(
                    f"INSERT INTO {patients} (tenant_id, patient_id, patient_ref)"
                    " VALUES (%s, %s, %s)",
                    (e.tenant_id, e.originator_id, e.patient_ref),
                )

        def patient_of(key: Any) -> str | None:
            if key in known:
                return known[key]
            curs.execute(_lookup(table, patients), (key, key))
            row = curs.fetchone()
            return None if row is None else str(row["patient_ref"])

        row = entry(topic, e, position, patient_of)
        if row is not None:
            curs.execute(
                f"INSERT INTO {table} ({', '.join(ENTRY)}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                row,
            )

    def bind(topic: str) -> Apply:
        return lambda curs, e, position: apply(curs, topic, e, position)

    return {topic: bind(topic) for topic in TOPICS}


def _writer(names: Names) -> Writer:
    """A batch of one tenant's events in one INSERT per table. Rows are made in log order as the
    handlers make them; an id whose patient no event in or before the batch named is looked up
    in the rows (after a restart): every row of the batch that could name it is made from an
    event that also put it in ``known``, so the rows not yet written would not change the
    answer."""
    table, patients = names("patient_timeline"), names("timeline_patients")
    known: dict[Any, str] = {}
    lookup = _lookup(table, patients)

    def write(curs: Cursor[Any], tenant: str, events: list[Event]) -> None:
        if len(known) > KNOWN_MAX:  # between batches only: the batch's own ids must stay known
            known.clear()

        def patient_of(key: Any) -> str | None:
            found = known.get(key)
            if found is None:
                curs.execute(lookup, (key, key))
                row = curs.fetchone()
                if row is None:
                    return None
                found = known[key] = str(row["patient_ref"])  # never changes once known
            return found

        rows: list[tuple[Any, ...]] = []
        patient_rows: list[tuple[Any, ...]] = []
        for position, topic, e in events:
            owner = _owner(topic, e)
            if owner is not None:
                known[owner[0]] = owner[1]
                if topic == PATIENT_REGISTERED:
                    patient_rows.append((e.originator_id, e.patient_ref))
            row = entry(topic, e, position, patient_of)
            if row is not None:
                rows.append(row[1:])
        insert_tenant_rows(curs, patients, tenant, PATIENT_TYPES, patient_rows)
        insert_tenant_rows(curs, table, tenant, ENTRY_TYPES, rows)

    return write


class TimelineBulk:
    """A rebuild's fast path: rows are computed in memory and inserted in bulk per batch."""

    def __init__(self, names: Names) -> None:
        self.table, self.patients = names("patient_timeline"), names("timeline_patients")
        self.known: dict[Any, str] = {}
        self.rows: list[tuple[Any, ...]] = []
        self.patient_rows: list[tuple[Any, ...]] = []

    def feed(self, events: list[tuple[int, str, Any]]) -> None:
        for position, topic, e in events:
            if e is None:
                continue
            owner = _owner(topic, e)
            if owner is not None:
                self.known[owner[0]] = owner[1]
                if topic == PATIENT_REGISTERED:
                    self.patient_rows.append((e.tenant_id, e.originator_id, e.patient_ref))
            row = entry(topic, e, position, self.known.get)
            if row is not None:
                self.rows.append(row)

    def flush(self, curs: Cursor[Any]) -> None:
        insert_rows(curs, self.patients, PATIENT, self.patient_rows)
        insert_rows(curs, self.table, ENTRY, self.rows)
        self.rows, self.patient_rows = [], []

    def finish(self, curs: Cursor[Any]) -> None:
        self.flush(curs)


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
    make_bulk=TimelineBulk,
    make_writer=_writer,
)


def timeline_rows(curs: Cursor[Any], patient_ref: str, limit: int) -> list[dict[str, Any]]:
    curs.execute(
        "SELECT position, at, kind, appointment_id, details FROM patient_timeline"
        " WHERE patient_ref = %s ORDER BY position LIMIT %s",
        (patient_ref, limit),
    )
    return list(curs.fetchall())
