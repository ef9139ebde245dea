"""Platform and staff setup commands: tenants, providers, appointment types, hours, patients."""

from __future__ import annotations

from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from booking.access import Scope
from booking.commands import Decision, Executor, IdempotencyKey, Plan
from booking.errors import AlreadyExists, NotFound
from booking.patients import Patient
from booking.practice import AppointmentType, Provider, Tenant, WeeklyHours
from booking.setupcache import SetupCache
from booking.store import SchedulingApp

A = TypeVar("A", bound=Aggregate)


def load(store: SchedulingApp, cls: type[A], *id_parts: str, what: str) -> A:
    try:
        aggregate: A = store.repository.get(cls.create_id(*id_parts))
    except AggregateNotFoundError:
        raise NotFound(f"{what} not found") from None
    return aggregate


def exists(store: SchedulingApp, cls: type[Aggregate], *id_parts: str) -> bool:
    return cls.create_id(*id_parts) in store.repository


class Setup:
    def __init__(self, store: SchedulingApp, executor: Executor, cache: SetupCache) -> None:
        self.store = store
        self.executor = executor
        self.cache = cache

    def tenant(self, tenant_id: str) -> Tenant:
        return load(self.store, Tenant, tenant_id, what=f"tenant {tenant_id!r}")

    def create_tenant(
        self, tenant_id: str, name: str, timezone: str, idem: IdempotencyKey | None = None
    ) -> Decision:
        def command() -> Plan:
            if exists(self.store, Tenant, tenant_id):
                raise AlreadyExists(f"tenant {tenant_id!r} already exists")
            return Plan(Tenant(tenant_id=tenant_id, name=name, timezone=timezone), 201, "tenant")

        return self.executor.run(command, idem)

    def create_provider(
        self,
        scope: Scope,
        provider_id: str,
        name: str,
        timezone: str | None,
        idem: IdempotencyKey | None = None,
    ) -> Decision:
        def command() -> Plan:
            tenant = self.tenant(scope.tenant_id)
            if exists(self.store, Provider, scope.tenant_id, provider_id):
                raise AlreadyExists(f"provider {provider_id!r} already exists")
            provider = Provider(
                tenant_id=scope.tenant_id,
                provider_id=provider_id,
                name=name,
                timezone=timezone or tenant.timezone,
            )
            tenant.add_provider(provider_id)
            return Plan(provider, 201, "provider", save=[tenant])

        return self.executor.run(command, idem)

    def create_appointment_type(
        self,
        scope: Scope,
        type_id: str,
        name: str,
        duration_minutes: int,
        idem: IdempotencyKey | None = None,
    ) -> Decision:
        def command() -> Plan:
            if exists(self.store, AppointmentType, scope.tenant_id, type_id):
                raise AlreadyExists(f"appointment type {type_id!r} already exists")
            kind = AppointmentType(
                tenant_id=scope.tenant_id,
                type_id=type_id,
                name=name,
                duration_minutes=duration_minutes,
            )
            return Plan(kind, 201, "appointment-type")

        return self.executor.run(command, idem)

    def set_weekly_hours(
        self,
        scope: Scope,
        provider_id: str,
        hours: list[dict[str, Any]],
        idem: IdempotencyKey | None = None,
    ) -> Decision:
        def command() -> Plan:
            load(
                self.store, Provider, scope.tenant_id, provider_id, what=f"provider {provider_id!r}"
            )
            try:
                current: WeeklyHours = self.store.repository.get(
                    WeeklyHours.create_id(scope.tenant_id, provider_id)
                )
            except AggregateNotFoundError:
                current = WeeklyHours(
                    tenant_id=scope.tenant_id, provider_id=provider_id, hours=hours
                )
            else:
                current.change(hours)
            return Plan(current, 200, "weekly-hours")

        decision = self.executor.run(command, idem)
        self.cache.forget(WeeklyHours.create_id(scope.tenant_id, provider_id))
        return decision

    def register_patient(
        self,
        scope: Scope,
        patient_ref: str,
        name: str,
        phone: str | None,
        birth_date: str | None,
        language: str | None,
        idem: IdempotencyKey | None = None,
    ) -> Decision:
        def command() -> Plan:
            if exists(self.store, Patient, scope.tenant_id, patient_ref):
                raise AlreadyExists(f"patient {patient_ref!r} already exists")
            patient = Patient(
                tenant_id=scope.tenant_id,
                patient_ref=patient_ref,
                name=name,
                phone=phone,
                birth_date=birth_date,
                language=language,
            )
            return Plan(patient, 201, "patient")

        return self.executor.run(command, idem)
