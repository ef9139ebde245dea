"""The clinic's setup: tenant, providers, appointment types and weekly hours."""

from __future__ import annotations

from datetime import time
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from booking.calendar import Interval
from booking.ids import aggregate_id
from booking.tenancy import TenantScoped
from booking.topics import pinned


@pinned("Tenant")
class Tenant(TenantScoped, Aggregate):
    class Registered(Aggregate.Created):
        tenant_id: str
        name: str
        timezone: str

    class ProviderAdded(Aggregate.Event):
        tenant_id: str
        provider_id: str

    @staticmethod
    def create_id(tenant_id: str) -> UUID:
        return aggregate_id(tenant_id, "tenant")

    @event(Registered)
    def __init__(self, tenant_id: str, name: str, timezone: str) -> None:
        self.tenant_id = tenant_id
        self.name = name
        self.timezone = timezone
        self.provider_ids: list[str] = []

    @event(ProviderAdded)
    def add_provider(self, provider_id: str) -> None:
        self.provider_ids.append(provider_id)


@pinned("Provider")
class Provider(TenantScoped, Aggregate):
    class Registered(Aggregate.Created):
        tenant_id: str
        provider_id: str
        name: str
        timezone: str

    @staticmethod
    def create_id(tenant_id: str, provider_id: str) -> UUID:
        return aggregate_id(tenant_id, "provider", provider_id)

    @event(Registered)
    def __init__(self, tenant_id: str, provider_id: str, name: str, timezone: str) -> None:
        self.tenant_id = tenant_id
        self.provider_id = provider_id
        self.name = name
        self.timezone = timezone


@pinned("AppointmentType")
class AppointmentType(TenantScoped, Aggregate):
    class Defined(Aggregate.Created):
        tenant_id: str
        type_id: str
        name: str
        duration_minutes: int

    @staticmethod
    def create_id(tenant_id: str, type_id: str) -> UUID:
        return aggregate_id(tenant_id, "appointment-type", type_id)

    @event(Defined)
    def __init__(self, tenant_id: str, type_id: str, name: str, duration_minutes: int) -> None:
        self.tenant_id = tenant_id
        self.type_id = type_id
        self.name = name
        self.duration_minutes = duration_minutes


@pinned("WeeklyHours")
class WeeklyHours(TenantScoped, Aggregate):
    """A provider's recurring opening hours, local wall-clock times in the provider's zone.

    ``hours`` are stored as ``{"weekday": int, "start": "HH:MM", "end": "HH:MM"}`` dicts.
    """

    class Set(Aggregate.Created):
        tenant_id: str
        provider_id: str
        hours: list[dict[str, Any]]

    class Changed(Aggregate.Event):
        tenant_id: str
        hours: list[dict[str, Any]]

    @staticmethod
    def create_id(tenant_id: str, provider_id: str) -> UUID:
        return aggregate_id(tenant_id, "weekly-hours", provider_id)

    @event(Set)
    def __init__(self, tenant_id: str, provider_id: str, hours: list[dict[str, Any]]) -> None:
        self.tenant_id = tenant_id
        self.provider_id = provider_id
        self.hours = hours

    @event(Changed)
    def change(self, hours: list[dict[str, Any]]) -> None:
        self.hours = hours

    def intervals(self) -> list[Interval]:
        return [
            Interval(h["weekday"], time.fromisoformat(h["start"]), time.fromisoformat(h["end"]))
            for h in self.hours
        ]
