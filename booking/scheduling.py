"""Agent-facing scheduling: availability, holds, bookings, reschedules, cancels, confirmations.

Every decision rests on the event store; nothing that can lag decides. A hold or booking may be
decided first on the versions this process's caches hold, and stands only if its save finds them
still current (see ``Scheduling._optimistic``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError

from booking.access import Scope
from booking.appointments import Appointment
from booking.calendar import (
    BadSlotId,
    Slot,
    SlotRef,
    dates_between,
    day_slots,
    decode_slot_id,
    slot_at,
    zone,
)
from booking.clock import Clock
from booking.codes import new_code, normalise_code
from booking.commands import Decision, Executor, IdempotencyKey, Plan
from booking.contention import RecentlyMoved
from booking.days import ProviderDay
from booking.errors import (
    BookingError,
    ConfirmationNotFound,
    HoldNotActive,
    NotFound,
    SlotUnavailable,
    TooManyHolds,
    ValidationFailed,
)
from booking.indexes import ConfirmationCode
from booking.ledger import CallLedger
from booking.patients import MAX_ACTIVE_HOLDS, Patient
from booking.practice import AppointmentType, Provider, Tenant, WeeklyHours
from booking.setup import load
from booking.setupcache import SetupCache
from booking.store import SchedulingApp, Versions

MARKS = {"arrived": "mark_arrived", "no-show": "mark_no_show", "completed": "mark_completed"}
ALTERNATIVES = 3
ALTERNATIVES_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Practice:
    """What generates one provider's slots of one type."""

    provider: Provider
    kind: AppointmentType
    hours: WeeklyHours | None

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.provider.timezone)

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.kind.duration_minutes)

    def slot_at(self, start: datetime) -> Slot | None:
        if self.hours is None:
            return None
        return slot_at(
            start,
            self.tz,
            self.hours.intervals(),
            self.duration,
            self.provider.provider_id,
            self.kind.type_id,
        )

    def slots_on(self, date: Any) -> list[Slot]:
        if self.hours is None:
            return []
        return list(
            day_slots(
                date,
                self.tz,
                self.hours.intervals(),
                self.duration,
                self.provider.provider_id,
                self.kind.type_id,
            )
        )


class Scheduling:
    def __init__(
        self,
        store: SchedulingApp,
        executor: Executor,
        clock: Clock,
        hold_ttl: int,
        setup: SetupCache,
        ledger: CallLedger,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.setup = setup
        self.executor = executor
        self.clock = clock
        self.hold_ttl = timedelta(seconds=hold_ttl)
        self.moved = RecentlyMoved(clock)

    # -- loading -------------------------------------------------------------------------------

    def _get(self, aggregate_id: UUID) -> Any | None:
        try:
            return self.store.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def _practice(self, tenant_id: str, provider_id: str, kind: AppointmentType) -> Practice | None:
        provider = self.setup.get(Provider.create_id(tenant_id, provider_id))
        if provider is None:
            return None
        hours = self.setup.get(WeeklyHours.create_id(tenant_id, provider_id))
        return Practice(provider, kind, hours)

    def _day(self, tenant_id: str, provider_id: str, date: str) -> ProviderDay | None:
        day: ProviderDay | None = self._get(ProviderDay.create_id(tenant_id, provider_id, date))
        return day

    def _day_or_new(
        self, tenant_id: str, practice: Practice, date: str, versions: Versions | None = None
    ) -> ProviderDay:
        provider = practice.provider
        day_id = ProviderDay.create_id(tenant_id, provider.provider_id, date)
        day: ProviderDay | None
        if versions is not None and versions.knows(day_id):
            version = versions.of(day_id)
            day = None if version is None else self.store.get_at(day_id, version)
        else:
            day = self._day(tenant_id, provider.provider_id, date)
        return day or ProviderDay(
            tenant_id=tenant_id,
            provider_id=provider.provider_id,
            date=date,
            timezone=provider.timezone,
        )

    def _patient(self, scope: Scope, patient_ref: str, versions: Versions | None = None) -> Patient:
        scope.require_patient(patient_ref)
        patient_id = Patient.create_id(scope.tenant_id, patient_ref)
        if versions is not None and versions.knows(patient_id):
            version = versions.of(patient_id)
            if version is None:
                raise NotFound(f"patient {patient_ref!r} not found")
            patient: Patient = self.store.get_at(patient_id, version)
            return patient
        return load(
            self.store, Patient, scope.tenant_id, patient_ref, what=f"patient {patient_ref!r}"
        )

    def _appointment(self, scope: Scope, appointment_id: UUID) -> Appointment:
        appointment = self._get(appointment_id)
        if (
            not isinstance(appointment, Appointment)
            or appointment.tenant_id != scope.tenant_id
            or (scope.patient_ref is not None and appointment.patient_ref != scope.patient_ref)
        ):
            raise NotFound(f"appointment {appointment_id} not found")
        return appointment

    # -- availability --------------------------------------------------------------------------

    def _open_slots(
        self,
        tenant_id: str,
        practice: Practice,
        start_from: datetime,
        start_to: datetime,
        now: datetime,
        limit: int | None,
    ) -> list[Slot]:
        """Open slots with start in [start_from, start_to], earliest first."""
        found: list[Slot] = []
        earliest = max(start_from, now)
        if earliest > start_to:
            return found
        first, last = (
            earliest.astimezone(practice.tz).date(),
            start_to.astimezone(practice.tz).date(),
        )
        for date in dates_between(first, last):
            candidates = [
                s
                for s in practice.slots_on(date)
                if earliest <= s.start <= start_to and s.start > now
            ]
            if not candidates:
                continue
            day = self._day(tenant_id, practice.provider.provider_id, date.isoformat())
            for slot in candidates:
                if day is None or day.blocker(slot.start, slot.end, now) is None:
                    found.append(slot)
                    if limit is not None and len(found) >= limit:
                        return found
        return found

    def availability(
        self,
        scope: Scope,
        type_id: str,
        provider_id: str | None,
        start_from: datetime,
        start_to: datetime,
        limit: int,
    ) -> list[Slot]:
        return self.ledger.track_read(
            scope,
            "availability",
            lambda: self._availability(scope, type_id, provider_id, start_from, start_to, limit),
            lambda slots: f"{len(slots)} slots",
        )

    def _availability(
        self,
        scope: Scope,
        type_id: str,
        provider_id: str | None,
        start_from: datetime,
        start_to: datetime,
        limit: int,
    ) -> list[Slot]:
        now = self.clock.now()
        kind = self.setup.get(AppointmentType.create_id(scope.tenant_id, type_id))
        if kind is None:
            raise NotFound(f"appointment type {type_id!r} not found")
        if provider_id is not None:
            provider_ids = [provider_id]
            if self.setup.get(Provider.create_id(scope.tenant_id, provider_id)) is None:
                raise NotFound(f"provider {provider_id!r} not found")
        else:
            provider_ids = load(self.store, Tenant, scope.tenant_id, what="tenant").provider_ids
        slots: list[Slot] = []
        for pid in provider_ids:
            practice = self._practice(scope.tenant_id, pid, kind)
            if practice is not None:
                slots.extend(
                    self._open_slots(scope.tenant_id, practice, start_from, start_to, now, limit)
                )
        slots.sort(key=lambda s: (s.start, s.provider_id))
        return slots[:limit]

    def with_timezones(self, scope: Scope, slots: list[Slot]) -> list[tuple[Slot, str]]:
        zones: dict[str, str] = {}
        for sl in slots:
            if sl.provider_id not in zones:
                provider = self.setup.get(Provider.create_id(scope.tenant_id, sl.provider_id))
                if provider is None:
                    raise NotFound(f"provider {sl.provider_id!r} not found")
                zones[sl.provider_id] = provider.timezone
        return [(sl, zones[sl.provider_id]) for sl in slots]

    def alternatives(self, tenant_id: str, type_id: str, around: datetime) -> list[dict[str, Any]]:
        """Up to three open slots of the same type nearest in time to ``around``, any provider."""
        now = self.clock.now()
        kind = self.setup.get(AppointmentType.create_id(tenant_id, type_id))
        tenant = self._get(Tenant.create_id(tenant_id))
        if kind is None or tenant is None:
            return []
        found: list[tuple[Slot, str]] = []
        for pid in tenant.provider_ids:
            practice = self._practice(tenant_id, pid, kind)
            if practice is not None:
                found.extend(
                    (sl, practice.provider.timezone)
                    for sl in self._open_slots(
                        tenant_id,
                        practice,
                        around - ALTERNATIVES_WINDOW,
                        around + ALTERNATIVES_WINDOW,
                        now,
                        None,
                    )
                )
        found.sort(key=lambda p: (abs(p[0].start - around), p[0].start, p[0].provider_id))
        nearest = sorted(found[:ALTERNATIVES], key=lambda p: (p[0].start, p[0].provider_id))
        return [
            {
                "slot_id": sl.slot_id,
                "provider_id": sl.provider_id,
                "type_id": sl.type_id,
                "start": sl.start.astimezone(zone(tz)),
                "end": sl.end.astimezone(zone(tz)),
            }
            for sl, tz in nearest
        ]

    # -- deciding on a slot --------------------------------------------------------------------

    def _read_first(
        self, scope: Scope, patient_ref: str, slot_id: str | None, trust_cache: bool = False
    ) -> Versions:
        """Where the streams a hold or booking reads stand, in one query to the event store.

        The patient, and for a slot id its type, provider, hours and provider day. The day's id
        needs the provider's time zone: it is taken from the setup cache, and should the fresh
        provider disagree, the day is read on its own (``Versions.knows`` tells).

        ``trust_cache``: when this process's caches hold every one of those streams, their
        versions are used instead of the query (see ``_optimistic``), unless the patient or the
        day was lately found written by another process (``booking.contention``).
        """
        ids = [Patient.create_id(scope.tenant_id, patient_ref)]
        setup_ids: list[UUID] = []
        if slot_id is not None:
            ref = self.decode(slot_id)
            setup_ids = self._slot_streams(scope.tenant_id, ref)
            provider = self.setup.get(Provider.create_id(scope.tenant_id, ref.provider_id))
            if provider is not None:
                date = ref.start.astimezone(zone(provider.timezone)).date().isoformat()
                ids.append(ProviderDay.create_id(scope.tenant_id, ref.provider_id, date))
        if trust_cache and not self.moved.any(ids):
            held = {i: self.store.cached_version(i) for i in ids}
            held.update({i: self.setup.cached_version(i) for i in setup_ids})
            if None not in held.values():
                found = {i: v for i, v in held.items() if v is not None}
                return Versions(frozenset(found), found, cached=True)
        versions = self.store.versions([*ids, *setup_ids])
        # the streams a booking writes (setup changes seldom; one collision refreshes it)
        self.moved.note(
            {i: versions.found[i] for i in ids if i in versions.found}, self.store.cached_version
        )
        return versions

    def _optimistic(
        self,
        read: Callable[[bool], Versions],
        decide: Callable[[Versions], Plan],
    ) -> Callable[[], Plan]:
        """A command whose first decision rests on the versions this process's caches hold.

        Most of the time the caches are what the store holds, and the query for versions is
        saved. When they are behind (another process wrote), the decision still cannot stand:
        the streams it writes collide at save time (a version conflict: the executor decides
        again, from the store), and the streams it only read are checked in the save's
        transaction (``Plan.unchanged``). A refusal writes nothing to collide, so a refusal on
        cached versions is decided again at once from the store's.
        """
        first = True

        def command() -> Plan:
            nonlocal first
            trust, first = first, False
            versions = read(trust)
            if versions.cached:
                try:
                    plan = decide(versions)
                except BookingError:
                    versions = read(False)
                else:
                    written = {plan.subject.id, *(a.id for a in plan.save)}
                    plan.unchanged.update(
                        {i: v for i, v in versions.found.items() if i not in written}
                    )
                    return plan
            return decide(versions)

        return command

    @staticmethod
    def _slot_streams(tenant_id: str, ref: SlotRef) -> list[UUID]:
        return [
            AppointmentType.create_id(tenant_id, ref.type_id),
            Provider.create_id(tenant_id, ref.provider_id),
            WeeklyHours.create_id(tenant_id, ref.provider_id),
        ]

    def decode(self, slot_id: str, field: str = "slot_id") -> SlotRef:
        try:
            return decode_slot_id(slot_id)
        except BadSlotId as exc:
            raise ValidationFailed.field(field, str(exc)) from None

    def _unavailable(self, tenant_id: str, ref: SlotRef, why: str) -> SlotUnavailable:
        return SlotUnavailable(
            f"the slot is not open: {why}", self.alternatives(tenant_id, ref.type_id, ref.start)
        )

    def _open_slot(
        self,
        tenant_id: str,
        ref: SlotRef,
        now: datetime,
        patient_ref: str,
        ignore_appointment: str | None = None,
        day: ProviderDay | None = None,
        versions: Versions | None = None,
    ) -> tuple[Slot, Practice, ProviderDay]:
        """The slot ``ref`` names, if the schedule offers it and nobody else holds or booked it."""
        kind, provider, hours = self.setup.fresh(
            *self._slot_streams(tenant_id, ref), versions=versions
        )
        practice = Practice(provider, kind, hours) if kind and provider else None
        if practice is None:
            raise self._unavailable(tenant_id, ref, "unknown provider or appointment type")
        date = ref.start.astimezone(practice.tz).date()
        slot = practice.slot_at(ref.start)
        if slot is None:
            raise self._unavailable(tenant_id, ref, "outside the provider's hours")
        if slot.start <= now:
            raise self._unavailable(tenant_id, ref, "it starts in the past")
        if day is None:
            day = self._day_or_new(tenant_id, practice, date.isoformat(), versions)
        blocker = day.blocker(
            slot.start,
            slot.end,
            now,
            patient_ref=patient_ref,
            ignore_appointment=ignore_appointment,
        )
        if blocker is not None:
            raise self._unavailable(tenant_id, ref, f"already {blocker}")
        return slot, practice, day

    # -- commands ------------------------------------------------------------------------------

    def _on_call(
        self,
        scope: Scope,
        call_id: str,
        tool: str,
        idem: IdempotencyKey | None,
        now: datetime,
        outcome: str,
        status: int,
        appointment_id: str | None = None,
        hold_id: str | None = None,
        day_id: str | None = None,
        patient_ref: str | None = None,
    ) -> Any:
        """The call, with this tool call recorded on it, to save with the command's events."""
        call = self.ledger.on_call(scope, call_id, now)
        call.require_active(tool)
        call.tool_called(
            tool=tool,
            token_id=scope.token_id,
            idempotency_key=idem.key if idem is not None else None,
            status=status,
            outcome=outcome,
            replayed=False,
            appointment_id=appointment_id,
            patient_ref=patient_ref,
            hold_id=hold_id,
            day_id=day_id,
        )
        return call

    def hold(
        self,
        scope: Scope,
        slot_id: str,
        patient_ref: str,
        call_id: str | None,
        idem: IdempotencyKey | None = None,
    ) -> Decision:
        ref = self.decode(slot_id)
        call = scope.resolve_call(call_id)

        def decide(versions: Versions) -> Plan:
            now = self.clock.now()
            patient = self._patient(scope, patient_ref, versions)
            slot, _, day = self._open_slot(
                scope.tenant_id, ref, now, patient_ref, versions=versions
            )
            own = day.own_hold_on(slot.start, slot.end, slot.type_id, patient_ref, now)
            if own is not None:
                raise SlotUnavailable(f"this patient already holds the slot (hold {own})")
            if len(patient.active_holds(now)) >= MAX_ACTIVE_HOLDS:
                raise TooManyHolds(
                    f"patient {patient_ref!r} already holds {MAX_ACTIVE_HOLDS} slots; book or "
                    "release one first"
                )
            hold_id = str(uuid4())
            expires_at = now + self.hold_ttl
            day.hold(
                hold_id=hold_id,
                type_id=ref.type_id,
                start=slot.start,
                end=slot.end,
                patient_ref=patient_ref,
                call_id=call,
                expires_at=expires_at,
            )
            patient.take_hold(hold_id=hold_id, day_id=str(day.id), expires_at=expires_at)
            save: list[Any] = [patient]
            if call is not None:
                save.append(
                    self._on_call(
                        scope,
                        call,
                        "hold",
                        idem,
                        now,
                        "held",
                        201,
                        hold_id=hold_id,
                        patient_ref=patient_ref,
                        day_id=str(day.id),
                    )
                )
            return Plan(day, 201, "hold", save=save, ref=hold_id)

        command = self._optimistic(
            lambda trust: self._read_first(scope, patient_ref, slot_id, trust), decide
        )
        return self.ledger.track(
            scope, call, "hold", idem, lambda: self.executor.run(command, idem)
        )

    def _held_slot(
        self, scope: Scope, patient: Patient, hold_id: str, now: datetime
    ) -> tuple[SlotRef, ProviderDay]:
        held = patient.holds.get(hold_id)
        day = self._get(UUID(held["day_id"])) if held else None
        hold = day.holds.get(hold_id) if day else None
        if hold is None or day is None:
            raise NotFound(f"hold {hold_id} not found")
        if hold["status"] != "held" or hold["expires_at"] <= now:
            status = "expired" if hold["status"] == "held" else hold["status"]
            raise HoldNotActive(f"hold {hold_id} is {status}; hold a slot again")
        return SlotRef(day.provider_id, hold["type_id"], hold["start"]), day

    def _target(
        self,
        scope: Scope,
        patient: Patient,
        hold_id: str | None,
        slot_id: str | None,
        now: datetime,
        ignore_appointment: str | None = None,
        versions: Versions | None = None,
    ) -> tuple[Slot, Practice, ProviderDay, str | None]:
        """The slot a booking or reschedule goes to, and the patient's hold it converts."""
        if hold_id is not None:
            ref, day = self._held_slot(scope, patient, hold_id, now)
            slot, practice, day = self._open_slot(
                scope.tenant_id, ref, now, patient.patient_ref, ignore_appointment, day
            )
            return slot, practice, day, hold_id
        assert slot_id is not None
        ref = self.decode(slot_id)
        slot, practice, day = self._open_slot(
            scope.tenant_id, ref, now, patient.patient_ref, ignore_appointment, versions=versions
        )
        converted = day.own_hold_on(slot.start, slot.end, slot.type_id, patient.patient_ref, now)
        return slot, practice, day, converted

    def book(
        self,
        scope: Scope,
        patient_ref: str,
        hold_id: str | None,
        slot_id: str | None,
        call_id: str | None,
        idem: IdempotencyKey | None = None,
    ) -> Decision:
        call = scope.resolve_call(call_id)
        if slot_id is not None:
            self.decode(slot_id)

        def decide(versions: Versions) -> Plan:
            now = self.clock.now()
            patient = self._patient(scope, patient_ref, versions)
            slot, practice, day, converted = self._target(
                scope, patient, hold_id, slot_id, now, versions=versions
            )
            code = new_code()
            appointment = Appointment(
                tenant_id=scope.tenant_id,
                patient_ref=patient_ref,
                provider_id=slot.provider_id,
                type_id=slot.type_id,
                start=slot.start,
                end=slot.end,
                timezone=practice.provider.timezone,
                day_id=day.id,
                confirmation_code=code,
                call_id=call,
                hold_id=converted,
            )
            index = ConfirmationCode(
                tenant_id=scope.tenant_id, code=code, appointment_id=appointment.id
            )
            day.book(
                appointment_id=str(appointment.id),
                start=slot.start,
                end=slot.end,
                hold_id=converted,
            )
            if converted is not None:
                patient.end_hold(hold_id=converted, outcome="converted")
            patient.add_appointment(appointment_id=str(appointment.id))
            save: list[Any] = [day, patient, index]
            if call is not None:
                save.append(
                    self._on_call(
                        scope,
                        call,
                        "book",
                        idem,
                        now,
                        "booked",
                        201,
                        appointment_id=str(appointment.id),
                        patient_ref=appointment.patient_ref,
                    )
                )
            return Plan(appointment, 201, "appointment", save=save)

        command = self._optimistic(
            lambda trust: self._read_first(scope, patient_ref, slot_id, trust), decide
        )
        return self.ledger.track(
            scope, call, "book", idem, lambda: self.executor.run(command, idem)
        )

    def reschedule(
        self,
        scope: Scope,
        appointment_id: UUID,
        hold_id: str | None,
        slot_id: str | None,
        idem: IdempotencyKey | None = None,
        call_id: str | None = None,
    ) -> Decision:
        call = scope.resolve_call(call_id)
        if slot_id is not None:
            self.decode(slot_id)

        def command() -> Plan:
            now = self.clock.now()
            appointment = self._appointment(scope, appointment_id)
            appointment._require_active("reschedule")
            patient = self._patient(scope, appointment.patient_ref)
            old_day: ProviderDay = self.store.repository.get(appointment.day_id)
            slot, practice, new_day, converted = self._target(
                scope, patient, hold_id, slot_id, now, ignore_appointment=str(appointment.id)
            )
            if slot.type_id != appointment.type_id:
                raise ValidationFailed.field(
                    "hold_id" if hold_id else "slot_id",
                    f"the slot is for {slot.type_id!r}, the appointment is {appointment.type_id!r}",
                )
            if new_day.id == old_day.id:
                old_day = new_day
            appointment.reschedule(
                provider_id=slot.provider_id,
                start=slot.start,
                end=slot.end,
                timezone=practice.provider.timezone,
                day_id=new_day.id,
                call_id=call,
                hold_id=converted,
            )
            old_day.release_booking(appointment_id=str(appointment.id), reason="rescheduled")
            new_day.book(
                appointment_id=str(appointment.id),
                start=slot.start,
                end=slot.end,
                hold_id=converted,
            )
            save: list[Any] = [old_day, new_day]
            if converted is not None:
                patient.end_hold(hold_id=converted, outcome="converted")
                save.append(patient)
            if call is not None:
                save.append(
                    self._on_call(
                        scope,
                        call,
                        "reschedule",
                        idem,
                        now,
                        "rescheduled",
                        200,
                        appointment_id=str(appointment.id),
                        patient_ref=appointment.patient_ref,
                    )
                )
            return Plan(appointment, 200, "appointment", save=save)

        return self.ledger.track(
            scope, call, "reschedule", idem, lambda: self.executor.run(command, idem)
        )

    def cancel(
        self,
        scope: Scope,
        appointment_id: UUID,
        reason: str | None,
        idem: IdempotencyKey | None = None,
        call_id: str | None = None,
    ) -> Decision:
        call = scope.resolve_call(call_id)

        def command() -> Plan:
            appointment = self._appointment(scope, appointment_id)
            appointment.cancel(reason=reason, by_role=scope.role, call_id=call)
            day: ProviderDay = self.store.repository.get(appointment.day_id)
            day.release_booking(appointment_id=str(appointment.id), reason="cancelled")
            save: list[Any] = [day]
            if call is not None:
                save.append(
                    self._on_call(
                        scope,
                        call,
                        "cancel",
                        idem,
                        self.clock.now(),
                        "cancelled",
                        200,
                        appointment_id=str(appointment.id),
                        patient_ref=appointment.patient_ref,
                    )
                )
            return Plan(appointment, 200, "cancellation", save=save)

        return self.ledger.track(
            scope, call, "cancel", idem, lambda: self.executor.run(command, idem)
        )

    def mark(
        self, scope: Scope, appointment_id: UUID, mark: str, idem: IdempotencyKey | None = None
    ) -> Decision:
        """Record what happened at the appointment: arrived, no-show or completed."""
        method = MARKS[mark]

        def command() -> Plan:
            appointment = self._appointment(scope, appointment_id)
            getattr(appointment, method)(self.clock.now(), scope.role)
            return Plan(appointment, 200, "mark")

        return self.executor.run(command, idem)

    # -- reads from the event stream -----------------------------------------------------------

    def confirmation(self, scope: Scope, raw_code: str) -> tuple[Appointment, int]:
        """The appointment a code names, read from the event store, and its latest position."""
        return self.ledger.track_read(
            scope,
            "confirmation",
            lambda: self.verify(scope, raw_code),
            lambda found: "confirmed" if found[0].status == "booked" else found[0].status,
        )

    def verify(self, scope: Scope, raw_code: str) -> tuple[Appointment, int]:
        code = normalise_code(raw_code)
        index = self._get(ConfirmationCode.create_id(scope.tenant_id, code)) if code else None
        if index is None:
            raise ConfirmationNotFound(f"no booking carries confirmation code {raw_code!r}")
        appointment = self._get(index.appointment_id)
        if appointment is None or (
            scope.patient_ref is not None and appointment.patient_ref != scope.patient_ref
        ):
            raise ConfirmationNotFound(f"no booking carries confirmation code {raw_code!r}")
        return appointment, self.store.position_of(appointment.id, appointment.version)

    def patient_appointments(self, scope: Scope, patient_ref: str) -> list[Appointment]:
        return self.ledger.track_read(
            scope,
            "patient-appointments",
            lambda: self._patient_appointments(scope, patient_ref),
            lambda found: f"{len(found)} appointments",
        )

    def _patient_appointments(self, scope: Scope, patient_ref: str) -> list[Appointment]:
        patient = self._patient(scope, patient_ref)
        appointments: list[Appointment] = [
            self.store.repository.get(UUID(a)) for a in patient.appointment_ids
        ]
        return sorted(appointments, key=lambda a: (a.start, str(a.id)))
