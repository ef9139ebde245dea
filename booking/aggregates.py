"""Every aggregate class, imported in one place: their stored topics (``booking:<Name>.<Event>``)
are registered when the classes are defined, so any process that reads the log must import
them, including one that only replays it (projections, rebuilds, incident replay)."""

from booking.appointments import Appointment
from booking.calls import Call
from booking.days import ProviderDay
from booking.indexes import ConfirmationCode, IdempotentRequest
from booking.patients import Patient
from booking.practice import AppointmentType, Provider, Tenant, WeeklyHours

__all__ = [
    "Appointment",
    "AppointmentType",
    "Call",
    "ConfirmationCode",
    "IdempotentRequest",
    "Patient",
    "Provider",
    "ProviderDay",
    "Tenant",
    "WeeklyHours",
]
