"""Domain errors. The HTTP edge maps each class to one problem type, in one place (api/problems.py).

BookingError
 ├── NotFound                    404  not-found: no such object in the caller's scope
 │    └── ConfirmationNotFound   404  confirmation-not-found (carries confirmed: false)
 ├── Conflict                    409  the request is valid but the current state refuses it
 │    ├── AlreadyExists          409  already-exists
 │    ├── SlotUnavailable        409  slot-unavailable (carries alternatives)
 │    ├── TooManyHolds           409  too-many-holds
 │    ├── HoldNotActive          409  hold-not-active (expired, released or converted)
 │    ├── InvalidState           409  invalid-state (e.g. cancelling a cancelled appointment)
 │    └── TokenAlreadyIssued     409  token-already-issued (a token's secret is shown once)
 ├── ValidationFailed            422  validation-error (carries errors: [{field, message}])
 │    └── IdempotencyKeyReuse    422  idempotency-key-reuse
 ├── Busy                        503  busy (conflict retries exhausted; nothing written)
 └── ReadModelBehind             503  read-model-behind (min_position not reached in time)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class BookingError(Exception):
    """Base of every error a command or query raises on purpose."""

    problem = "booking-error"
    title = "Request refused"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def extra(self) -> dict[str, Any]:
        """Fields added to the problem document beyond type/title/status/detail."""
        return {}


class NotFound(BookingError):
    problem = "not-found"
    title = "Not found"


class ConfirmationNotFound(NotFound):
    problem = "confirmation-not-found"
    title = "No booking carries this confirmation code"

    def extra(self) -> dict[str, Any]:
        return {"confirmed": False}


class Conflict(BookingError):
    problem = "conflict"
    title = "Conflict with the current state"


class AlreadyExists(Conflict):
    problem = "already-exists"
    title = "Already exists"


class SlotUnavailable(Conflict):
    problem = "slot-unavailable"
    title = "Slot unavailable"

    def __init__(self, detail: str, alternatives: list[Any] | None = None) -> None:
        super().__init__(detail)
        self.alternatives = alternatives or []

    def extra(self) -> dict[str, Any]:
        return {"alternatives": self.alternatives}


class TooManyHolds(Conflict):
    problem = "too-many-holds"
    title = "Too many holds"


class HoldNotActive(Conflict):
    problem = "hold-not-active"
    title = "Hold is no longer active"


class InvalidState(Conflict):
    problem = "invalid-state"
    title = "Not allowed in the current state"


class TokenAlreadyIssued(Conflict):
    problem = "token-already-issued"
    title = "Token already issued for this Idempotency-Key"


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ValidationFailed(BookingError):
    problem = "validation-error"
    title = "Invalid request"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        super().__init__(detail or "; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors

    @classmethod
    def field(cls, field: str, message: str) -> ValidationFailed:
        return cls([FieldError(field, message)])

    def extra(self) -> dict[str, Any]:
        return {"errors": [{"field": e.field, "message": e.message} for e in self.errors]}


class IdempotencyKeyReuse(ValidationFailed):
    problem = "idempotency-key-reuse"
    title = "Idempotency-Key reused with a different request"

    def __init__(self) -> None:
        super().__init__(
            [FieldError("Idempotency-Key", "was already used with a different request body")],
            detail="this Idempotency-Key was already used for a different request; "
            "send a new key for a new request",
        )


class Busy(BookingError):
    problem = "busy"
    title = "Too much contention, try again"

    retry_after_seconds = 1


class ReadModelBehind(BookingError):
    problem = "read-model-behind"
    title = "The view has not caught up yet"

    retry_after_seconds = 1


# The HTTP status each kind of refusal answers with, most specific first: the edge maps errors with
# it (api/problems.py) and the call ledger records it with each tool call's outcome.
HTTP_STATUS: list[tuple[type[BookingError], int]] = [
    (ValidationFailed, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Busy, 503),
    (ReadModelBehind, 503),
]


def http_status(exc: BookingError) -> int:
    return next((code for cls, code in HTTP_STATUS if isinstance(exc, cls)), 400)
