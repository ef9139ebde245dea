"""Running a command: one atomic save, bounded re-runs on a version conflict, idempotent replays.

A command is a function that loads aggregates, decides (raising a BookingError to refuse) and
returns a Plan: the aggregates to save and the one whose new event decided the request. The
executor saves the plan in one transaction together with the Idempotency-Key's index aggregate.
When another writer got there first (IntegrityError on an aggregate version), nothing was written;
the command is loaded and decided again from fresh state. A replay of an Idempotency-Key returns
the aggregate as it was at the deciding version, so the reply renders to the same bytes. The key
is looked up only after a refusal or a conflict: a repeated key always ends in one of the two,
because its index aggregate cannot be created twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from booking.audit import COMMAND_ENTRY, entry_params
from booking.errors import BookingError, Busy, IdempotencyKeyReuse
from booking.indexes import ConfirmationCode, IdempotentRequest
from booking.store import SchedulingApp

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 30


@dataclass
class Plan:
    subject: Aggregate
    status_code: int
    kind: str
    save: list[Aggregate] = field(default_factory=list)
    ref: str | None = None
    # streams the decision read but does not write, at the versions it read: the save stores
    # nothing if any of them moved meanwhile (see store.CheckedRecorder)
    unchanged: dict[UUID, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """What a command decided: the deciding aggregate at the deciding event, and where it is."""

    kind: str
    subject: Any
    stream_id: UUID
    version: int
    position: int
    status_code: int
    ref: str | None
    replayed: bool = False


@dataclass(frozen=True)
class IdempotencyKey:
    tenant_id: str
    scope: str  # the token that sent it
    key: str
    fingerprint: str

    @classmethod
    def for_request(
        cls, tenant_id: str, scope: str, key: str, method: str, path: str, body: Any
    ) -> IdempotencyKey:
        canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
        return cls(tenant_id, scope, key, hashlib.sha256(canonical.encode()).hexdigest())


class Executor:
    def __init__(
        self, store: SchedulingApp, max_attempts: int = MAX_ATTEMPTS, *, audited: bool = True
    ) -> None:
        """``audited``: a save stores the request's audit entry (booking.audit.COMMAND_ENTRY)
        with the command's events, once per request; off for saves that only record what
        happened to a command after its answer (booking.ledger)."""
        self.store = store
        self.max_attempts = max_attempts
        self.audited = audited

    def run(
        self, command: Callable[[], Plan], idempotency: IdempotencyKey | None = None
    ) -> Decision:
        entry = COMMAND_ENTRY.get() if self.audited else None
        if entry is not None and entry.written is not None:
            entry = None  # stored by an earlier command of the same request
        for attempt in range(self.max_attempts):
            # A first arrival needs no lookup: should the key be known after all, its index
            # aggregate collides in the save below and the next attempt replays it.
            if idempotency is not None and attempt > 0:
                replay = self._replay(idempotency)
                if replay is not None:
                    return replay
            try:
                plan = command()
            except BookingError:
                # A concurrent duplicate may have committed between our replay check and the
                # command's reads, so the command saw its effect (e.g. the slot it booked). The
                # first answer wins over a refusal caused by the request's own twin.
                if idempotency is not None:
                    replay = self._replay(idempotency)
                    if replay is not None:
                        return replay
                raise
            pending: list[Aggregate] = list({a.id: a for a in [plan.subject, *plan.save]}.values())
            if idempotency is not None:
                pending.append(
                    IdempotentRequest(
                        tenant_id=idempotency.tenant_id,
                        scope=idempotency.scope,
                        key=idempotency.key,
                        fingerprint=idempotency.fingerprint,
                        status_code=plan.status_code,
                        kind=plan.kind,
                        stream_id=plan.subject.id,
                        version=plan.subject.version,
                        ref=plan.ref,
                    )
                )
            audit = None
            if entry is not None:
                patient_ref = getattr(plan.subject, "patient_ref", None)
                audit = entry_params(entry.fields(plan.status_code, patient_ref))
            try:
                recordings = self.store.record(pending, unchanged=plan.unchanged, audit=audit)
            except IntegrityError:
                # Someone else wrote one of these aggregates first; nothing of ours was stored.
                time.sleep(random.uniform(0, min(0.25, 0.004 * 2**attempt)))
                continue
            if entry is not None:
                entry.written = plan.status_code
            # the subject goes back to the caller for rendering, and a copy of it to the cache
            # (a day a hold was taken on must be cached at its new version, or the next hold on
            # it would be decided on the old one and collide); the rest is the cache's now
            # Saved index aggregates are not remembered: they never change, a read of one costs a
            # query cached or not, and one per booking would push days and patients out of the
            # cache. (Reading one still caches it, as the repository does for any aggregate.)
            self.store.remember(
                deepcopy(a) if a is plan.subject else a
                for a in pending
                if not isinstance(a, IdempotentRequest | ConfirmationCode)
            )
            position = next(
                r.notification.id
                for r in recordings
                if r.domain_event.originator_id == plan.subject.id
                and r.domain_event.originator_version == plan.subject.version
            )
            return Decision(
                kind=plan.kind,
                subject=plan.subject,
                stream_id=plan.subject.id,
                version=plan.subject.version,
                position=position,
                status_code=plan.status_code,
                ref=plan.ref,
            )
        log.warning("command gave up after %d conflicting attempts", self.max_attempts)
        raise Busy("too many concurrent changes to the same schedule; nothing was written")

    def _replay(self, idempotency: IdempotencyKey) -> Decision | None:
        record_id = IdempotentRequest.create_id(idempotency.scope, idempotency.key)
        try:
            record: IdempotentRequest = self.store.repository.get(record_id)
        except AggregateNotFoundError:
            return None
        if record.fingerprint != idempotency.fingerprint:
            raise IdempotencyKeyReuse()
        subject: Aggregate = self.store.repository.get(record.stream_id, version=record.version)
        return Decision(
            kind=record.kind,
            subject=subject,
            stream_id=record.stream_id,
            version=record.version,
            position=self.store.position_of(record.stream_id, record.version),
            status_code=record.status_code,
            ref=record.ref,
            replayed=True,
        )
