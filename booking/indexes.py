"""Index aggregates keyed by UUIDv5 (the eventsourcing ``contentmanagement`` pattern).

Each is created in the same atomic save as the command it indexes, so a duplicate confirmation
code or a duplicate request collides on (id, version 1) in the event store, and a lookup reads only
the event store.
"""

from __future__ import annotations

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from booking.ids import AGGREGATE_NAMESPACE, aggregate_id
from booking.topics import pinned


@pinned("ConfirmationCode")
class ConfirmationCode(Aggregate):
    class Issued(Aggregate.Created):
        tenant_id: str
        code: str
        appointment_id: UUID

    @staticmethod
    def create_id(tenant_id: str, code: str) -> UUID:
        return aggregate_id(tenant_id, "confirmation-code", code)

    @event(Issued)
    def __init__(self, tenant_id: str, code: str, appointment_id: UUID) -> None:
        self.tenant_id = tenant_id
        self.code = code
        self.appointment_id = appointment_id


@pinned("IdempotentRequest")
class IdempotentRequest(Aggregate):
    """What one Idempotency-Key produced: enough to re-render the first 2xx answer byte for byte.

    ``stream_id``/``version`` name the stored event that decided the request; the reply is a pure
    function of that aggregate at that version and the event's log position.
    """

    class Recorded(Aggregate.Created):
        tenant_id: str
        scope: str
        key: str
        fingerprint: str
        status_code: int
        kind: str
        stream_id: UUID
        version: int
        ref: str | None

    @staticmethod
    def create_id(scope: str, key: str) -> UUID:
        return uuid5(AGGREGATE_NAMESPACE, f"idempotency/{scope}/{key}")

    @event(Recorded)
    def __init__(
        self,
        tenant_id: str,
        scope: str,
        key: str,
        fingerprint: str,
        status_code: int,
        kind: str,
        stream_id: UUID,
        version: int,
        ref: str | None,
    ) -> None:
        self.tenant_id = tenant_id
        self.scope = scope
        self.key = key
        self.fingerprint = fingerprint
        self.status_code = status_code
        self.kind = kind
        self.stream_id = stream_id
        self.version = version
        self.ref = ref
