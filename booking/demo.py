"""A demo clinic, seeded idempotently, so a new user can try the API in a minute."""

from __future__ import annotations

import contextlib

from eventsourcing.application import AggregateNotFoundError

from booking.access import Scope
from booking.errors import AlreadyExists
from booking.patients import Patient
from booking.practice import WeeklyHours
from booking.setup import Setup
from booking.tokens import IssuedToken, TokenStore

TENANT = "demo-clinic"
TIMEZONE = "America/New_York"
PROVIDERS = (("dr-rivera", "Dr. Ana Rivera"), ("dr-chen", "Dr. Wei Chen"))
TYPES = (("checkup", "Check-up", 30), ("consult", "Consultation", 60))
HOURS = [
    {"weekday": d, "start": s, "end": e}
    for d in range(5)
    for s, e in (("09:00", "12:00"), ("13:00", "17:00"))
]
PATIENTS = (
    ("pat-ana", "Ana Torres", "+1 555 0101", "1984-03-12", "es"),
    ("pat-ben", "Ben Okafor", "+1 555 0102", "1979-11-02", "en"),
    ("pat-carla", "Carla Mendes", "+1 555 0103", "1992-07-21", "en"),
)


def seed(setup: Setup, tokens: TokenStore) -> tuple[IssuedToken, IssuedToken]:
    """Create whatever of the demo clinic is missing; return fresh staff and agent tokens."""
    with contextlib.suppress(AlreadyExists):
        setup.create_tenant(TENANT, "Demo Clinic", TIMEZONE)
    scope = Scope(tenant_id=TENANT, role="staff", token_id="demo-seed")
    for provider_id, name in PROVIDERS:
        with contextlib.suppress(AlreadyExists):
            setup.create_provider(scope, provider_id, name, None)
        try:
            setup.store.repository.get(WeeklyHours.create_id(TENANT, provider_id))
        except AggregateNotFoundError:
            setup.set_weekly_hours(scope, provider_id, HOURS)
    for type_id, name, minutes in TYPES:
        with contextlib.suppress(AlreadyExists):
            setup.create_appointment_type(scope, type_id, name, minutes)
    for ref, name, phone, birth_date, language in PATIENTS:
        if Patient.create_id(TENANT, ref) not in setup.store.repository:
            setup.register_patient(scope, ref, name, phone, birth_date, language)
    staff = tokens.issue(TENANT, "staff", None, None, None)
    agent = tokens.issue(TENANT, "agent", None, None, None)
    return staff, agent
