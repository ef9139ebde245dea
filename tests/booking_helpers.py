"""Small helpers shared by the story modules: reading the real event store, finding open slots,
and checking problem+json answers. Nothing here mocks anything: the store is the app's own
PostgreSQL database, opened with the app's cipher key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx

from booking.days import ProviderDay
from booking.store import SchedulingApp, open_store
from tests.support.server import LiveServer, Practice, Tenant, expect

PROBLEM_MEDIA_TYPE = "application/problem+json"
LEAK_MARKERS = ("traceback", "psycopg", "sql")

# Windows of open_slots start at a UTC midnight fixed when the run starts, so asking twice for
# "the same" window gives the same window even if real time (or a ManualClock) moved in between.
# Clinics here open 09:00-12:00 America/New_York (14:00-17:00Z), far from any window edge.
ANCHOR = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

APPOINTMENT_BOOKED = "booking:Appointment.Booked"
APPOINTMENT_RESCHEDULED = "booking:Appointment.Rescheduled"
APPOINTMENT_CANCELLED = "booking:Appointment.Cancelled"


@dataclass(frozen=True)
class StoredEvent:
    position: int  # the notification id: the event's place in the global log
    topic: str
    event: Any  # the decoded (decrypted) domain event

    @property
    def stream_id(self) -> Any:
        return self.event.originator_id

    @property
    def version(self) -> int:
        return int(self.event.originator_version)


class EventLog:
    """The app's event store, read back and decoded (events are encrypted at rest)."""

    def __init__(self, server: LiveServer) -> None:
        self.store: SchedulingApp = open_store(
            server.settings.database_url, server.settings.cipher_key
        )

    def close(self) -> None:
        self.store.close()

    def max_position(self) -> int:
        return int(self.store.recorder.max_notification_id() or 0)

    def events(self, after: int = 0, topics: tuple[str, ...] = ()) -> list[StoredEvent]:
        found: list[StoredEvent] = []
        start = after
        while True:
            batch = self.store.recorder.select_notifications(
                start, 500, topics=list(topics), inclusive_of_start=False
            )
            for notification in batch:
                found.append(
                    StoredEvent(
                        position=notification.id,
                        topic=notification.topic,
                        event=self.store.mapper.to_domain_event(notification),
                    )
                )
            if len(batch) < 500:
                return found
            start = batch[-1].id

    def appointment_events(
        self, topic: str = APPOINTMENT_BOOKED, after: int = 0
    ) -> list[StoredEvent]:
        return self.events(after, (topic,))


def event_log(server: LiveServer) -> Iterator[EventLog]:
    """Body of a module fixture: ``yield from event_log(live_server)``."""
    log = EventLog(server)
    try:
        yield log
    finally:
        log.close()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def iso(instant: datetime) -> str:
    return instant.isoformat()


def open_slots(
    client: httpx.Client,
    tenant: Tenant,
    practice: Practice,
    *,
    days_from: int = 1,
    days: int = 10,
    limit: int = 50,
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Open slots of ``practice``'s type in the ``days`` days from UTC midnight ``days_from`` days
    after the run started (see ANCHOR), earliest first."""
    body = {
        "type_id": practice.type_id,
        "provider_id": practice.provider_id,
        "start_from": iso(ANCHOR + timedelta(days=days_from)),
        "start_to": iso(ANCHOR + timedelta(days=days_from + days)),
        "limit": limit,
    }
    answer = expect(
        client.post("/v1/agent/availability", json=body, headers=headers or tenant.agent_headers),
        200,
    )
    return list(answer["slots"])


def read_model(
    client: httpx.Client,
    path: str,
    params: dict[str, Any],
    headers: dict[str, str],
    min_position: int,
    patience: float = 20.0,
) -> Any:
    """A read-model view once it has applied ``min_position``. The server waits up to 2 s, then
    answers 503 read-model-behind with Retry-After; a client retries, and so does this (a loaded
    CI machine can lag more than 2 s)."""
    deadline = time.monotonic() + patience
    while True:
        response = client.get(
            path, params={**params, "min_position": min_position}, headers=headers
        )
        if response.status_code != 503 or time.monotonic() > deadline:
            return expect(response, 200)
        assert_problem(response, 503, "read-model-behind")
        time.sleep(min(float(response.headers.get("Retry-After", "1")), 1.0))


def assert_problem(
    response: httpx.Response, status: int, type_suffix: str | None = None
) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem of ``status``, its ``type`` ending in ``type_suffix``."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path} answered "
        f"{response.status_code}, expected {status}: {response.text}"
    )
    assert response.headers.get("content-type", "").startswith(PROBLEM_MEDIA_TYPE), (
        response.headers.get("content-type"),
        response.text,
    )
    problem = response.json()
    assert isinstance(problem, dict), problem
    assert problem.get("status") == status, problem
    assert isinstance(problem.get("type"), str), problem
    assert problem["type"].startswith("/problems/"), problem
    assert isinstance(problem.get("title"), str) and problem["title"], problem
    assert isinstance(problem.get("detail"), str) and problem["detail"], problem
    if type_suffix is not None:
        assert problem["type"].endswith(type_suffix), problem
    if status == 422:
        errors = problem.get("errors")
        assert isinstance(errors, list) and errors, problem
        for error in errors:
            assert isinstance(error.get("field"), str) and error["field"], problem
            assert isinstance(error.get("message"), str) and error["message"], problem
    assert_no_leak(response)
    return problem


def assert_no_leak(response: httpx.Response) -> None:
    lowered = response.text.lower()
    for marker in LEAK_MARKERS:
        assert marker not in lowered, f"response leaks {marker!r}: {response.text}"


def error_fields(problem: dict[str, Any]) -> list[str]:
    return [e["field"] for e in problem.get("errors") or []]


DAY_START = datetime(2030, 1, 1, 9, tzinfo=UTC)


def new_day(store: SchedulingApp) -> ProviderDay:
    """A provider day of a provider of its own, saved: version 1."""
    day = ProviderDay(
        tenant_id="t", provider_id=f"dr-{uuid4().hex[:8]}", date="2030-01-01", timezone="UTC"
    )
    store.save(day)
    return day


def book_nth(day: ProviderDay, n: int) -> None:
    """Book the day's ``n``-th quarter hour from 09:00 (one pending event)."""
    start = DAY_START + timedelta(minutes=15 * n)
    day.book(appointment_id=f"a{n}", start=start, end=start + timedelta(minutes=15), hold_id=None)
