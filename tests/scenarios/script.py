"""A phone call as a script of turns, played against the real HTTP app.

A scenario reads like the call it stands for::

    with clinic.call(patient="maria") as call:
        call.patient("Hi, I'd like a check-up tomorrow morning.")
        offer = call.tool("check_availability", type_id="checkup", **clinic.day(1))
        call.agent(f"I have {spoken(offer.slot(0))} or {spoken(offer.slot(1))}.")
        held = call.tool("hold_slot", slot_id=offer.slot_id(0), patient_ref="maria", expect="201")
        call.later(minutes=6)
        call.tool("book_appointment", hold_id=held["hold_id"], patient_ref="maria",
                  expect="409 hold-not-active")

Turns:
- ``call.patient(text)``: what the caller says; context for the reader, nothing is sent.
- ``call.agent(text)``: what the AI is about to say to the patient. It goes to the utterance gate
  (the check_utterance tool) and must be allowed; ``refused="<reason>"`` says the gate must refuse
  it, and why (``no-active-booking-on-call``, ``code-not-verified``).
- ``call.tool(name, expect=..., **arguments)``: a tool call exactly as an LLM platform makes it:
  the tool's name from GET /v1/agent/tools and its arguments, sent to the route that tool names
  (path parameters filled in, the rest as the JSON body), with the call's own agent token.
  ``expect`` is ``"2xx"`` (the default), a status (``"201"``), a status and a problem type
  (``"409 slot-unavailable"``), or either of two (``"201 or 409 slot-unavailable"``, for races).
  A 5xx always fails the scenario.
- ``call.later(minutes=..)``: the clinic's clock moves on (the server's ManualClock).
- ``call.retry(reply)``: the platform sends the very same request again (same Idempotency-Key).

``with clinic.call(patient=...) as call:`` starts the call (start_call) with a token bound to the
call and the patient, and ends it (end_call) with its duration on the clinic's clock.

Every turn is written to the call's transcript; a failed expectation prints the transcript, so
a failure reads like the call that went wrong.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

from api.tools import TOOLS
from tests.booking_helpers import EventLog, assert_no_leak, assert_problem, read_model
from tests.support.server import LiveServer, Tenant, expect, seed_tenant, setup_practice

MIN_TURNS = 6  # the bar: a scenario is a conversation, not a single tool call
TOOL_ROUTES = {t.name: t for t in TOOLS}


@dataclass(frozen=True)
class Outcome:
    status: int | None  # None: any 2xx
    problem: str | None = None  # the problem type's last segment, e.g. "slot-unavailable"

    @classmethod
    def parse(cls, text: str) -> Outcome:
        head, _, problem = text.strip().partition(" ")
        if head == "2xx":
            return cls(None)
        return cls(int(head), problem.strip() or None)

    def mismatch(self, response: httpx.Response) -> str | None:
        """None when ``response`` is this outcome, else how it differs."""
        status = response.status_code
        if self.status is None:
            return None if 200 <= status < 300 else f"expected success, got {status}"
        if status != self.status:
            return f"expected {self.status}, got {status}"
        if status >= 400:
            try:
                assert_problem(response, status, self.problem)
            except AssertionError as exc:
                return f"not the expected problem: {exc}"
        return None

    def __str__(self) -> str:
        if self.status is None:
            return "2xx"
        return f"{self.status} {self.problem}" if self.problem else str(self.status)


@dataclass(frozen=True)
class Expectation:
    """``"201"``, ``"409 slot-unavailable"``, or alternatives: ``"201 or 409 slot-unavailable"``."""

    outcomes: tuple[Outcome, ...]

    @classmethod
    def parse(cls, text: str) -> Expectation:
        return cls(tuple(Outcome.parse(part) for part in text.split(" or ")))

    def check(self, response: httpx.Response) -> str | None:
        """None when ``response`` meets the expectation, else what went wrong."""
        if response.status_code >= 500:
            return f"the server failed ({response.status_code})"
        misses = [o.mismatch(response) for o in self.outcomes]
        if any(m is None for m in misses):
            return None
        return "; ".join(m for m in misses if m)

    def __str__(self) -> str:
        return " or ".join(map(str, self.outcomes))


@dataclass
class Reply:
    """A tool's answer: the HTTP response and what was sent to get it."""

    response: httpx.Response
    method: str
    path: str
    body: dict[str, Any] | None
    headers: dict[str, str]

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def json(self) -> Any:
        return self.response.json()

    def __getitem__(self, key: str) -> Any:
        return self.json[key]

    def slot(self, index: int) -> dict[str, Any]:
        """The index-th slot of an availability answer (or of a refusal's alternatives)."""
        body = self.json
        slots = body.get("slots") if "slots" in body else body.get("alternatives")
        assert slots and len(slots) > index, f"no slot #{index} in {body}"
        return dict(slots[index])

    def slot_id(self, index: int) -> str:
        return str(self.slot(index)["slot_id"])


def spoken(slot: dict[str, Any]) -> str:
    """A slot as an agent says it: 'Tuesday at 9:30'. Times carry the provider's offset."""
    start = datetime.fromisoformat(slot["start"])
    return f"{start:%A} at {start.hour}:{start.minute:02d}"


def summary(response: httpx.Response) -> str:
    """What an answer says, in a few words, for the transcript."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:60]
    if not isinstance(body, dict):
        return ""
    if "type" in body and "status" in body:
        return str(body["type"]).rsplit("/", 1)[-1]
    if "slots" in body:
        return (
            "offers "
            + ", ".join(spoken(s) for s in body["slots"][:4])
            + (" …" if len(body["slots"]) > 4 else "")
        )
    if "confirmation_code" in body and "start" in body:
        return f"{body['status']} {spoken(body)}, code {body['confirmation_code']}"
    if "hold_id" in body:
        return f"held {spoken(body)}"
    if "confirmed" in body:
        return f"confirmed={body['confirmed']} status={body.get('status')}"
    if "appointments" in body:
        return f"{len(body['appointments'])} appointment(s)"
    if "status" in body:
        return str(body["status"])
    return ""


def brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}…({len(text)} chars)"


@dataclass
class Call:
    """One phone call: its own call id and agent token (bound to the call and, once the caller is
    identified, to their patient_ref), and a transcript of every turn."""

    clinic: Clinic
    call_id: str
    patient_ref: str | None
    language: str
    headers: dict[str, str]
    client: httpx.Client
    transcript: list[str] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- turns -------------------------------------------------------------------------------

    def patient(self, text: str) -> None:
        self._turn(f"patient: {text}")

    def agent(self, text: str, *, refused: str | None = None) -> dict[str, Any]:
        """What the AI is about to tell the patient, put to the utterance gate first (the
        check_utterance tool). It must be allowed; ``refused="<reason>"`` says the gate must
        refuse it, for that reason."""
        reply = self.send("check_utterance", {"call_id": self.call_id, "text": text})
        verdict = reply.json if reply.status == 200 else {}
        if verdict.get("allowed") is True:
            heard = f"allowed ({verdict.get('reason')})"
        elif verdict.get("allowed") is False:
            heard = f"REFUSED ({verdict.get('reason')})"
        else:
            heard = f"{reply.status}"
        expected = f"refused ({refused})" if refused else "allowed"
        self._turn(f'agent: "{text}"  ⇐ gate: {heard}  [expect {expected}]')
        if reply.status != 200:
            self.fail(f"the utterance gate answered {reply.status}: {reply.response.text}")
        if refused is None and verdict.get("allowed") is not True:
            self.fail(f"the gate refused what the call backs up: {verdict}")
        if refused is not None and (verdict.get("allowed"), verdict.get("reason")) != (
            False,
            refused,
        ):
            self.fail(f"the gate should refuse this ({refused}); it answered {verdict}")
        return dict(verdict)

    def tool(
        self,
        name: str,
        *,
        expect: str = "2xx",
        key: str | None = None,
        **arguments: Any,
    ) -> Reply:
        """A tool call with its arguments. Writes carry an Idempotency-Key, as clients should."""
        reply = self.send(name, arguments, key)
        outcome = Expectation.parse(expect)
        self._turn(
            f"agent → {name}({', '.join(f'{k}={brief(v)}' for k, v in arguments.items())})"
            f"  ⇐ {reply.status} {summary(reply.response)}  [expect {outcome}]"
        )
        assert_no_leak(reply.response)
        problem = outcome.check(reply.response)
        if problem is not None:
            self.fail(f"{problem}: {reply.response.text[:2000]}")
        return reply

    def send(self, name: str, arguments: dict[str, Any], key: str | None = None) -> Reply:
        """The HTTP request a tool call becomes (no expectation checked, no turn recorded)."""
        route = TOOL_ROUTES.get(name)
        if route is None or name not in self.clinic.served_tools():
            self.fail(f"no tool named {name!r} in GET /v1/agent/tools")
        assert route is not None
        path, body = route.path, dict(arguments)
        for param, _ in route.path_params:
            path = path.replace("{" + param + "}", quote(str(body.pop(param)), safe=""))
        headers = dict(self.headers)
        if route.method == "POST":
            headers["Idempotency-Key"] = key or f"{self.call_id}-{uuid.uuid4()}"
            response = self.client.post(path, json=body, headers=headers)
        else:
            response = self.client.request(route.method, path, headers=headers)
        return Reply(
            response, route.method, path, body if route.method == "POST" else None, headers
        )

    def retry(self, reply: Reply, *, expect: str = "2xx") -> Reply:
        """The platform did not see the answer and sends the very same request again."""
        response = self.client.request(
            reply.method, reply.path, json=reply.body, headers=reply.headers
        )
        again = Reply(response, reply.method, reply.path, reply.body, reply.headers)
        outcome = Expectation.parse(expect)
        self._turn(
            f"platform retries {reply.method} {reply.path}  ⇐ {again.status}  [expect {outcome}]"
        )
        problem = outcome.check(response)
        if problem is not None:
            self.fail(f"{problem}: {response.text[:2000]}")
        return again

    def start(self) -> None:
        """The platform starts recording the call (the start_call tool)."""
        body: dict[str, Any] = {"call_id": self.call_id, "language": self.language}
        if self.patient_ref is not None:
            body["patient_ref"] = self.patient_ref
        reply = self.send("start_call", body)
        self._turn(
            f"[call {self.call_id} starts: {self.patient_ref or 'caller not identified'}, "
            f"language {self.language}]  ⇐ {reply.status}",
            counts=False,
        )
        if reply.status != 201:
            self.fail(f"start_call answered {reply.status}: {reply.response.text}")
        self.started_at = self.clinic.server.clock.now()

    def hang_up(self, outcome: str | None = None) -> None:
        """The call ends (the end_call tool), with its duration on the clinic's clock."""
        if self.ended:
            return
        seconds = int((self.clinic.server.clock.now() - self.started_at).total_seconds())
        body: dict[str, Any] = {"call_id": self.call_id, "duration_seconds": seconds}
        if outcome is not None:
            body["outcome"] = outcome
        reply = self.send("end_call", body)
        self._turn(
            f"[call ends after {seconds} s{f', {outcome}' if outcome else ''}]  ⇐ {reply.status}",
            counts=False,
        )
        if reply.status != 200:
            self.fail(f"end_call answered {reply.status}: {reply.response.text}")
        self.ended = True

    def later(self, *, minutes: float = 0, seconds: float = 0) -> None:
        self.clinic.server.clock.advance(minutes=minutes, seconds=seconds)
        self._turn(f"… {minutes * 60 + seconds:.0f} seconds pass")

    def note(self, text: str) -> None:
        """Something the reader should know that is not said on the line (a check, a fact)."""
        self._turn(f"({text})")

    def check(self, condition: bool, what: str) -> None:
        """A fact about the world the call must leave behind."""
        self._turn(f"check: {what}")
        if not condition:
            self.fail(f"not so: {what}")

    # -- bookkeeping -------------------------------------------------------------------------

    def _turn(self, line: str, counts: bool = True) -> None:
        with self._lock:
            self.transcript.append(f"{len(self.transcript) + 1:3d}. {line}")
            self.clinic.turns += counts

    def fail(self, why: str) -> None:
        raise AssertionError(
            f"call {self.call_id}, turn {len(self.transcript)}: {why}\n\n"
            + "transcript:\n"
            + "\n".join(self.transcript)
        )


@dataclass
class Clinic:
    """A clinic of its own for one scenario: a tenant with one provider (Dr Lopez, 09:00-12:00
    every day in New York) and 30-minute check-ups. Patients are put on file as calls name them."""

    server: LiveServer
    tenant: Tenant
    provider_id: str
    type_id: str
    timezone: str
    patients: tuple[str, ...]
    turns: int = 0
    calls: list[Call] = field(default_factory=list)
    _clients: list[httpx.Client] = field(default_factory=list)
    _tools: set[str] | None = None
    # the clinic's date when the story begins: "in three days" names the same day all through
    # it, even when the clinic's clock passes midnight in between (a call that waits six minutes
    # from just before midnight in New York once looked for its ten o'clock a day later)
    today: date = field(init=False)

    def __post_init__(self) -> None:
        self.today = self.server.clock.now().astimezone(ZoneInfo(self.timezone)).date()

    @contextmanager
    def call(
        self,
        patient: str | None = None,
        *,
        language: str = "en",
        call_id: str | None = None,
    ) -> Iterator[Call]:
        """A call: opened with the platform's call id, bound to ``patient`` once identified."""
        call_id = call_id or f"call-{uuid.uuid4().hex[:12]}"
        call = self.open_call(patient, language=language, call_id=call_id)
        call.start()
        yield call
        call.hang_up()

    def open_call(self, patient: str | None, *, language: str, call_id: str) -> Call:
        if patient is not None:
            self.on_file(patient)
        headers = self.tenant.token("agent", patient_ref=patient, call_id=call_id)
        client = self.server.client()
        self._clients.append(client)
        call = Call(self, call_id, patient, language, headers, client)
        self.calls.append(call)
        return call

    def served_tools(self) -> set[str]:
        """The tool names GET /v1/agent/tools gives an agent (what an LLM platform would offer)."""
        if self._tools is None:
            with self.server.client() as client:
                listed = expect(
                    client.get("/v1/agent/tools", headers=self.tenant.agent_headers), 200
                )
            self._tools = {t["function"]["name"] for t in listed}
        return self._tools

    def on_file(self, *patient_refs: str, language: str | None = None) -> None:
        """The front desk registers these patients, unless they are on file already."""
        with self.server.client() as client:
            for ref in patient_refs:
                if ref in self.patients:
                    continue
                body: dict[str, Any] = {
                    "patient_ref": ref,
                    "name": ref.title(),
                    "phone": "+15550100",
                }
                if language is not None:
                    body["language"] = language
                expect(
                    client.post("/v1/staff/patients", json=body, headers=self.tenant.staff_headers),
                    201,
                )
                self.patients += (ref,)

    def day(self, days_ahead: int) -> dict[str, str]:
        """Availability arguments for one whole local day, ``days_ahead`` days from the story's
        first day."""
        tz = ZoneInfo(self.timezone)
        start = datetime.combine(self.today + timedelta(days=days_ahead), time(0, 0), tz)
        return {
            "type_id": self.type_id,
            "provider_id": self.provider_id,
            "start_from": start.isoformat(),
            "start_to": (start + timedelta(hours=23, minutes=59)).isoformat(),
        }

    def open_slot_ids(self, days_ahead: int) -> list[str]:
        """What availability offers on that day right now (a staff-side look, not a turn)."""
        with self.server.client() as client:
            answer = expect(
                client.post(
                    "/v1/agent/availability",
                    json={**self.day(days_ahead), "limit": 50},
                    headers=self.tenant.agent_headers,
                ),
                200,
            )
        return [s["slot_id"] for s in answer["slots"]]

    def board(self, days_ahead: tuple[int, int], min_position: int) -> list[dict[str, Any]]:
        """The front desk's board (a read model) for those days, once it has applied
        ``min_position``."""
        today = self.today
        with self.server.client() as client:
            answer = read_model(
                client,
                "/v1/staff/appointments",
                {
                    "date_from": (today + timedelta(days=days_ahead[0])).isoformat(),
                    "date_to": (today + timedelta(days=days_ahead[1])).isoformat(),
                },
                self.tenant.staff_headers,
                min_position,
            )
        return list(answer["appointments"])

    def close(self) -> None:
        for client in self._clients:
            client.close()


def schedule_writes(log: EventLog, since: int) -> list[str]:
    """Topics of the events stored after ``since``, leaving out the calls' own record (a call
    records every tool call made on it, refusals and replays included, and every utterance)."""
    return [e.topic for e in log.events(after=since) if not e.topic.startswith("booking:Call.")]


def together(calls: Sequence[Callable[[], Reply]]) -> list[Reply]:
    """Run the given turns at the same moment, each on its own thread (a race)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # reported below, not lost in a thread
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    errors = [r for r in results if not isinstance(r, Reply)]
    if errors:
        raise errors[0]
    return results


def open_clinic(server: LiveServer, name: str) -> Clinic:
    """A fresh tenant set up through the public API, as a clinic's staff would."""
    tenant = seed_tenant(server, name)
    practice = setup_practice(
        server, tenant, provider_id="dr-lopez", type_id="checkup", patients=()
    )
    return Clinic(
        server=server,
        tenant=tenant,
        provider_id=practice.provider_id,
        type_id=practice.type_id,
        timezone="America/New_York",
        patients=(),
    )
