"""Appointment read models: the patient portal (a patient's appointments) and the staff board
(appointments by date, provider and status). Both follow the Appointment's events; neither holds
patient data beyond the patient's reference."""

from __future__ import annotations

from typing import Any

from psycopg import Cursor

from projections.base import (
    Apply,
    Columns,
    Event,
    Projection,
    Table,
    Writer,
    insert_rows,
    insert_tenant_rows,
    update_tenant_rows,
)

BOOKED = "booking:Appointment.Booked"
RESCHEDULED = "booking:Appointment.Rescheduled"
STATUS_EVENTS = {
    "booking:Appointment.Cancelled": "cancelled",
    "booking:Appointment.Arrived": "arrived",
    "booking:Appointment.NoShow": "no-show",
    "booking:Appointment.Completed": "completed",
}

COLUMNS = """
    appointment_id uuid NOT NULL,
    patient_ref text NOT NULL,
    provider_id text NOT NULL,
    type_id text NOT NULL,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    timezone text NOT NULL,
    status text NOT NULL,
    confirmation_code text NOT NULL,
    call_id text,
    booked_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version integer NOT NULL,
    position bigint NOT NULL,
    PRIMARY KEY (tenant_id, appointment_id)
"""


def _handlers(table: str) -> dict[str, Apply]:
    def booked(curs: Cursor[Any], e: Any, position: int) -> None:
        curs.execute(
            f"INSERT INTO {table} (tenant_id, appointment_id, patient_ref, provider_id, type_id,"
            " start_at, end_at, timezone, status, confirmation_code, call_id, booked_at,"
            " updated_at, version, position)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'booked', %s, %s, %s, %s, %s, %s)",
            (
                e.tenant_id,
                e.originator_id,
                e.patient_ref,
                e.provider_id,
                e.type_id,
                e.start,
                e.end,
                e.timezone,
                e.confirmation_code,
                e.call_id,
                e.timestamp,
                e.timestamp,
                e.originator_version,
                position,
            ),
        )

    def rescheduled(curs: Cursor[Any], e: Any, position: int) -> None:
        curs.execute(
            f"UPDATE {table} SET provider_id = %s, start_at = %s, end_at = %s, timezone = %s,"
            " updated_at = %s, version = %s, position = %s WHERE appointment_id = %s",
            (
                e.provider_id,
                e.start,
                e.end,
                e.timezone,
                e.timestamp,
                e.originator_version,
                position,
                e.originator_id,
            ),
        )

    def status(value: str) -> Any:
        def changed(curs: Cursor[Any], e: Any, position: int) -> None:
            curs.execute(
                f"UPDATE {table} SET status = %s, updated_at = %s, version = %s, position = %s"
                " WHERE appointment_id = %s",
                (value, e.timestamp, e.originator_version, position, e.originator_id),
            )

        return changed

    handlers: dict[str, Apply] = {BOOKED: booked, RESCHEDULED: rescheduled}
    handlers.update({topic: status(value) for topic, value in STATUS_EVENTS.items()})
    return handlers


ROW_COLUMNS = (
    "tenant_id",
    "appointment_id",
    "patient_ref",
    "provider_id",
    "type_id",
    "start_at",
    "end_at",
    "timezone",
    "status",
    "confirmation_code",
    "call_id",
    "booked_at",
    "updated_at",
    "version",
    "position",
)


TYPES: Columns = (
    ("appointment_id", "uuid"),
    ("patient_ref", "text"),
    ("provider_id", "text"),
    ("type_id", "text"),
    ("start_at", "timestamptz"),
    ("end_at", "timestamptz"),
    ("timezone", "text"),
    ("status", "text"),
    ("confirmation_code", "text"),
    ("call_id", "text"),
    ("booked_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("version", "integer"),
    ("position", "bigint"),
)
KIND = dict(TYPES)


def _booked_row(e: Any, position: int) -> dict[str, Any]:
    """The row a Booked event creates, as its handler inserts it (without tenant_id)."""
    return {
        "appointment_id": e.originator_id,
        "patient_ref": e.patient_ref,
        "provider_id": e.provider_id,
        "type_id": e.type_id,
        "start_at": e.start,
        "end_at": e.end,
        "timezone": e.timezone,
        "status": "booked",
        "confirmation_code": e.confirmation_code,
        "call_id": e.call_id,
        "booked_at": e.timestamp,
        "updated_at": e.timestamp,
        "version": e.originator_version,
        "position": position,
    }


def _changes(topic: str, e: Any, position: int) -> dict[str, Any] | None:
    """The columns a change event sets, as its handler sets them; None for other topics."""
    if topic == RESCHEDULED:
        changes = {
            "provider_id": e.provider_id,
            "start_at": e.start,
            "end_at": e.end,
            "timezone": e.timezone,
        }
    elif topic in STATUS_EVENTS:
        changes = {"status": STATUS_EVENTS[topic]}
    else:
        return None
    changes.update(updated_at=e.timestamp, version=e.originator_version, position=position)
    return changes


def _writer(table: str) -> Writer:
    """A batch of one tenant's events in one INSERT (the appointments booked in it, with their
    later changes in the batch folded in) and one UPDATE per set of changed columns (the
    appointments booked before it, each with its changes folded in log order). As with the
    handlers, a change to an appointment that has no row changes nothing."""

    def write(curs: Cursor[Any], tenant: str, events: list[Event]) -> None:
        new: dict[Any, dict[str, Any]] = {}
        changed: dict[Any, dict[str, Any]] = {}
        for position, topic, e in events:
            if topic == BOOKED:
                # changes before it found no row (or the INSERT fails, as the handler's would)
                changed.pop(e.originator_id, None)
                new[e.originator_id] = _booked_row(e, position)
                continue
            changes = _changes(topic, e, position)
            if changes is None:
                continue
            row = new.get(e.originator_id)
            if row is not None:
                row.update(changes)
            else:
                changed.setdefault(e.originator_id, {}).update(changes)
        insert_tenant_rows(
            curs, table, tenant, TYPES, [tuple(r[c] for c, _ in TYPES) for r in new.values()]
        )
        by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for appointment_id, changes in changed.items():
            columns = tuple(sorted(changes))
            by_columns.setdefault(columns, []).append(
                (appointment_id, *(changes[c] for c in columns))
            )
        for columns, rows in by_columns.items():
            update_tenant_rows(curs, table, TYPES[0], tuple((c, KIND[c]) for c in columns), rows)

    return write


class AppointmentsBulk:
    """A rebuild's fast path: each appointment's final row folded in memory, inserted at the end.
    Mirrors the handlers above: a change to an appointment never seen booked is ignored."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.rows: dict[Any, dict[str, Any]] = {}

    def feed(self, events: list[tuple[int, str, Any]]) -> None:
        for position, topic, e in events:
            if e is None:
                continue
            if topic == BOOKED:
                self.rows[e.originator_id] = {"tenant_id": e.tenant_id, **_booked_row(e, position)}
                continue
            row = self.rows.get(e.originator_id)
            changes = _changes(topic, e, position) if row is not None else None
            if row is not None and changes is not None:
                row.update(changes)

    def flush(self, curs: Cursor[Any]) -> None:
        pass  # rows change until the last event: written at the end

    def finish(self, curs: Cursor[Any]) -> None:
        insert_rows(
            curs,
            self.table,
            ROW_COLUMNS,
            [tuple(r[c] for c in ROW_COLUMNS) for r in self.rows.values()],
        )
        self.rows = {}


PORTAL = Projection(
    name="portal",
    tables=(
        Table(
            "portal_appointments",
            COLUMNS,
            ("(tenant_id, patient_ref, start_at)",),
        ),
    ),
    make_handlers=lambda names: _handlers(names("portal_appointments")),
    make_bulk=lambda names: AppointmentsBulk(names("portal_appointments")),
    make_writer=lambda names: _writer(names("portal_appointments")),
)

BOARD = Projection(
    name="board",
    tables=(
        Table(
            "board_appointments",
            COLUMNS,
            (
                "(tenant_id, start_at)",
                "(tenant_id, provider_id, start_at)",
                "(tenant_id, status, start_at)",
            ),
        ),
    ),
    make_handlers=lambda names: _handlers(names("board_appointments")),
    make_bulk=lambda names: AppointmentsBulk(names("board_appointments")),
    make_writer=lambda names: _writer(names("board_appointments")),
)


# -- queries (run inside reads.tenant_snapshot) ------------------------------------------------

ROW = (
    "appointment_id, patient_ref, provider_id, type_id, start_at, end_at, timezone, status,"
    " confirmation_code"
)


def portal_rows(curs: Cursor[Any], patient_ref: str) -> list[dict[str, Any]]:
    curs.execute(
        f"SELECT {ROW} FROM portal_appointments WHERE patient_ref = %s"
        " ORDER BY start_at, appointment_id",
        (patient_ref,),
    )
    return list(curs.fetchall())


def board_rows(
    curs: Cursor[Any],
    start: Any,
    end: Any,
    provider_id: str | None,
    status: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    query = f"SELECT {ROW} FROM board_appointments WHERE start_at >= %s AND start_at < %s"
    params: list[Any] = [start, end]
    if provider_id is not None:
        query += " AND provider_id = %s"
        params.append(provider_id)
    if status is not None:
        query += " AND status = %s"
        params.append(status)
    curs.execute(
        query + " ORDER BY start_at, provider_id, appointment_id LIMIT %s", (*params, limit)
    )
    return list(curs.fetchall())
