"""Incident replay: what happened on a call, to a patient, an appointment or a provider's day, or in
a window of time, read from the event log and told as a timeline.

Each line is one stored event (time, log position, actor, what happened, key fields) with flags on
what an analyst looks for first: an utterance the gate blocked, a claim made without a booking
event, a tool call answered from idempotency (a retry), a slot lost to another agent, a hold that
expired unused. PHI is masked unless asked for; `--at` shows an appointment or a day as it was.

Windows stream: events are read page by page and written as they are described, so memory stays
flat however long the window is.
"""

from __future__ import annotations

import functools
import heapq
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec

from booking.store import EVENTS_TABLE, SchedulingApp

MASK = "●●●"
_JSON = msgspec.json.Encoder()
PAGE = 1000

BLOCKED = "gate-blocked"
NO_BOOKING = "claim-without-booking"
RETRY = "idempotent-retry"
LOST = "conflict-lost"
EXPIRED = "hold-expired"
LOSING = ("slot-unavailable", "busy", "hold-not-active")


@dataclass
class Line:
    at: datetime
    position: int | None  # None: not an event, a consequence seen later (a hold that expired)
    tenant_id: str
    stream: str  # aggregate kind and id, e.g. "Call 9f…"
    actor: str
    what: str
    fields: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    def as_json(self) -> str:
        """One JSON line (msgspec writes times as RFC 3339 and ids as strings by itself)."""
        return _JSON.encode(
            {
                "at": self.at.astimezone(UTC),
                "position": self.position,
                "tenant_id": self.tenant_id,
                "stream": self.stream,
                "actor": self.actor,
                "what": self.what,
                "fields": self.fields,
                "flags": self.flags,
            }
        ).decode()

    def as_text(self) -> str:
        where = f"#{self.position}" if self.position is not None else "-"
        flags = "  ⚑ " + ", ".join(self.flags) if self.flags else ""
        shown = "  ".join(f"{k}={_text(v)}" for k, v in self.fields.items() if v is not None)
        return (
            f"{self.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z {where:>9}  {self.actor:<22} "
            f"{self.what:<24} {shown}{flags}"
        )


def plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _text(value: Any) -> str:
    if isinstance(value, str) and " " in value:
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(plain(value))


# -- PHI -------------------------------------------------------------------------------------------


class Masker:
    """Hides names, phones and birth dates unless the analyst asked to see them (audited).

    Free text (what the agent said, a cancel reason) may name anyone, so it is hidden whole; what
    the gate matched as a claim ("you're confirmed") is kept, because that is what an incident
    turns on and it holds no patient data.
    """

    def __init__(self, show_phi: bool) -> None:
        self.show = show_phi

    def value(self, value: Any) -> Any:
        return value if self.show or value is None else MASK

    def text(self, text: str | None, keep: str | None = None) -> str | None:
        if text is None or self.show:
            return text
        hidden = f"{MASK} ({len(text)} characters)"
        return f"{hidden} claim: {keep!r}" if keep else hidden


# -- describing events -------------------------------------------------------------------------


class Describer:
    """Turns stored events into timeline lines and notices what never happened (expired holds)."""

    def __init__(self, masker: Masker) -> None:
        self.mask = masker
        # call stream -> call id, for the lines of its later events (bounded: a window may be long)
        self.calls: OrderedDict[UUID, str] = OrderedDict()
        # holds seen and not ended: hold_id -> the line that took it (bounded by live holds)
        self.open_holds: dict[str, Line] = {}
        self.expiries: list[tuple[datetime, str]] = []  # heap of (expires_at, hold_id)

    def line(self, position: int, topic: str, e: Any) -> Line | None:
        name = topic.removeprefix("booking:")
        kind, _, event_name = name.partition(".")
        handler: Callable[[Line, Any], bool] | None = getattr(self, "_" + kind.lower(), None)
        tenant = getattr(e, "tenant_id", "?")
        line = Line(
            at=e.timestamp,
            position=position,
            tenant_id=tenant,
            stream=f"{kind} {str(e.originator_id)[:8]}",
            actor="system",
            what=_words(event_name),
        )
        if handler is not None and not handler(line, e):
            return None
        return line

    def expired(self, until: datetime) -> list[Line]:
        """Holds that ran out before ``until`` without being booked or released, earliest first.

        Called before every event, so it must cost nothing when nothing is due: holds wait in a
        heap by expiry; those booked or released meanwhile are dropped as they surface.
        """
        found = []
        while self.expiries and self.expiries[0][0] <= until:
            expires_at, hold_id = heapq.heappop(self.expiries)
            taken = self.open_holds.pop(hold_id, None)
            if taken is not None and taken.fields["expires_at"] == expires_at:
                found.append(
                    Line(
                        at=expires_at,
                        position=None,
                        tenant_id=taken.tenant_id,
                        stream=taken.stream,
                        actor="clock",
                        what="hold expired",
                        fields={"hold_id": hold_id, "call_id": taken.fields.get("call_id")},
                        flags=[EXPIRED],
                    )
                )
        return found

    # one method per aggregate kind: fill the line, or return False to leave the event out

    def _call(self, line: Line, e: Any) -> bool:
        name = type(e).__name__
        if name == "Started":
            self.calls[e.originator_id] = e.call_id
            if len(self.calls) > 10_000:
                self.calls.popitem(last=False)
            line.fields = {"call_id": e.call_id, "patient_ref": e.patient_ref}
            line.fields["language"] = e.language
            line.what = "call started" + (" (implicitly)" if e.implicit else "")
        line.stream = f"Call {self.calls.get(e.originator_id, str(e.originator_id)[:8])}"
        if name == "ToolCalled":
            line.actor = f"agent {e.token_id[:8]}"
            line.what = f"tool {e.tool} → {e.status}"
            line.fields = {
                "outcome": e.outcome,
                "key": e.idempotency_key,
                "appointment_id": e.appointment_id,
                "hold_id": e.hold_id,
            }
            if e.replayed:
                line.flags.append(RETRY)
            if e.outcome in LOSING:
                line.flags.append(LOST)
        elif name == "Uttered":
            line.actor = f"agent {e.token_id[:8]}"
            line.what = "said (allowed)" if e.allowed else "utterance BLOCKED"
            line.fields = {
                "text": self.mask.text(e.text, e.phrase),
                "reason": e.reason,
                "claim": e.claim,
                "codes": e.codes or None,
                "backing": [b.get("appointment_id") or b.get("code") for b in e.backing] or None,
            }
            if not e.allowed:
                line.flags.append(BLOCKED)
                if e.reason == "no-active-booking-on-call":
                    line.flags.append(NO_BOOKING)
        elif name == "Described":
            line.fields = {"patient_ref": e.patient_ref, "language": e.language}
        elif name == "Ended":
            line.what = "call ended"
            line.fields = {
                "duration_seconds": e.duration_seconds,
                "outcome": e.outcome,
                "cost_cents": e.cost_cents,
            }
        return True

    def _appointment(self, line: Line, e: Any) -> bool:
        line.stream = f"Appointment {e.originator_id}"
        name = type(e).__name__
        call = getattr(e, "call_id", None)
        line.actor = f"call {call}" if call else getattr(e, "by_role", None) or "system"
        if name in ("Booked", "Rescheduled"):
            line.fields = {
                "start": e.start,
                "provider_id": e.provider_id,
                "patient_ref": getattr(e, "patient_ref", None),
                "code": getattr(e, "confirmation_code", None),
                "from": getattr(e, "previous_start", None),
            }
        elif name == "Cancelled":
            line.fields = {"reason": self.mask.text(e.reason)}
        return True

    def _providerday(self, line: Line, e: Any) -> bool:
        name = type(e).__name__
        if name == "Held":
            line.actor = f"call {e.call_id}" if e.call_id else "agent"
            line.what = "slot held"
            line.fields = {
                "hold_id": e.hold_id,
                "start": e.start,
                "patient_ref": e.patient_ref,
                "call_id": e.call_id,
                "expires_at": e.expires_at,
            }
            self.open_holds[e.hold_id] = line
            heapq.heappush(self.expiries, (e.expires_at, e.hold_id))
        elif name == "HoldReleased":
            self.open_holds.pop(e.hold_id, None)
            line.fields = {"hold_id": e.hold_id}
        elif name == "Booked":
            if e.hold_id:
                self.open_holds.pop(e.hold_id, None)
            line.what = "slot booked"
            line.fields = {"appointment_id": e.appointment_id, "start": e.start, "hold": e.hold_id}
        elif name == "BookingReleased":
            line.what = "slot freed"
            line.fields = {"appointment_id": e.appointment_id, "reason": e.reason}
        else:
            return False
        return True

    def _patient(self, line: Line, e: Any) -> bool:
        name = type(e).__name__
        if name == "Registered":
            line.what = "patient registered"
            line.fields = {
                "patient_ref": e.patient_ref,
                "name": self.mask.value(e.name),
                "phone": self.mask.value(e.phone),
                "birth_date": self.mask.value(e.birth_date),
            }
            return True
        return name == "AppointmentAdded" and False  # the appointment's own events say it

    def _idempotentrequest(self, line: Line, e: Any) -> bool:
        return False  # the tool call on the call says it, with the key

    def _confirmationcode(self, line: Line, e: Any) -> bool:
        return False  # the booking says it, with the code


@functools.cache
def _words(event_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", event_name).lower()


# -- reading the log ---------------------------------------------------------------------------


def stream_events(store: SchedulingApp, stream_ids: Iterable[UUID]) -> list[tuple[int, str, Any]]:
    """Every stored event of these streams, in log order, decoded."""
    from eventsourcing.persistence import StoredEvent

    ids = list(dict.fromkeys(stream_ids))
    if not ids:
        return []
    with store.recorder.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
        curs.execute(
            f"SELECT notification_id, originator_id, originator_version, topic, state"
            f" FROM {EVENTS_TABLE} WHERE originator_id = ANY(%s) ORDER BY notification_id",
            (ids,),
        )
        rows = curs.fetchall()
    return [
        (
            int(r["notification_id"]),
            r["topic"],
            store.mapper.to_domain_event(
                StoredEvent(
                    originator_id=r["originator_id"],
                    originator_version=r["originator_version"],
                    topic=r["topic"],
                    state=bytes(r["state"]),
                )
            ),
        )
        for r in rows
    ]


def log_events(
    store: SchedulingApp, after: int = 0, until: int | None = None, topics: Sequence[str] = ()
) -> Iterator[tuple[int, str, Any]]:
    """The log (only ``topics``, when given) from position ``after`` (exclusive) to ``until``
    (inclusive), decoded, a page at a time."""
    position = after
    while True:
        page = store.recorder.select_notifications(
            start=position, limit=PAGE, stop=until, topics=topics, inclusive_of_start=False
        )
        for n in page:
            yield n.id, n.topic, store.mapper.to_domain_event(n)
        if len(page) < PAGE:
            return
        position = page[-1].id


def first_position_at(store: SchedulingApp, at: datetime) -> int:
    """A log position at or before the first event recorded at ``at`` or later (binary search:
    timestamps grow with positions up to commit-order jitter, which the caller's margin absorbs)."""
    low, high = 0, int(store.recorder.max_notification_id() or 0)
    while low < high:
        middle = (low + high + 1) // 2
        page = store.recorder.select_notifications(start=middle, limit=1)
        first: Any = store.mapper.to_domain_event(page[0]) if page else None
        if first is None or first.timestamp >= at:
            high = middle - 1
        else:
            low = page[0].id
    return low
