"""What the agent said, checked against what happened: the call ledger, the utterance gate and the
incident replay, told as the calls they come from.

The incident from the field: an agent said "Great, you're confirmed for Tuesday at 9" without ever
booking. Here that sentence is refused and recorded, and `booking replay call` shows it flagged
with no booking event; after a real booking on the same call the same sentence is allowed, and the
replay shows the booking event before it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from booking import cli
from tests.booking_helpers import assert_problem, open_slots
from tests.support.server import LiveServer, Practice, Tenant, expect, seed_tenant, setup_practice

INCIDENT = "Great, you're confirmed for Tuesday at 9"
CANARY_NAME = "Zebulon Quackenbush"
CANARY_PHONE = "+1 555 867 5309"


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "calls-clinic")


@pytest.fixture(scope="module")
def practice(live_server: LiveServer, tenant: Tenant) -> Practice:
    found = setup_practice(live_server, tenant, patients=("pat-1", "pat-2", "pat-3"))
    with live_server.client() as client:
        expect(
            client.post(
                "/v1/staff/patients",
                json={"patient_ref": "canary", "name": CANARY_NAME, "phone": CANARY_PHONE},
                headers=tenant.staff_headers,
            ),
            201,
        )
    return found


@pytest.fixture()
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as c:
        yield c


@pytest.fixture()
def replay(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    """Run `booking replay …` in this process against the server's database; (status, stdout)."""
    settings = live_server.settings
    monkeypatch.setenv("BOOKING_DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("BOOKING_ADMIN_DATABASE_URL", str(settings.admin_database_url))
    monkeypatch.setenv("BOOKING_CIPHER_KEY", str(settings.cipher_key))
    monkeypatch.setenv("BOOKING_HOME", str(settings.home))

    def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        status = cli.main(["replay", *argv])
        captured = capsys.readouterr()
        errors.append(captured.err)
        return status, captured.out

    errors: list[str] = []
    run.errors = errors  # type: ignore[attr-defined]
    return run


def start_call(
    client: httpx.Client, tenant: Tenant, call_id: str, patient_ref: str, language: str = "en"
) -> dict[str, Any]:
    return dict(
        expect(
            client.post(
                "/v1/agent/calls",
                json={"call_id": call_id, "patient_ref": patient_ref, "language": language},
                headers=tenant.agent_headers,
            ),
            201,
        )
    )


def say(
    client: httpx.Client, tenant: Tenant, call_id: str, text: str, **headers: str
) -> dict[str, Any]:
    return dict(
        expect(
            client.post(
                f"/v1/agent/calls/{call_id}/utterances",
                json={"text": text},
                headers={**tenant.agent_headers, **headers},
            ),
            200,
        )
    )


def book(
    client: httpx.Client,
    tenant: Tenant,
    slot: dict[str, Any],
    patient_ref: str,
    call_id: str,
    **headers: str,
) -> httpx.Response:
    return client.post(
        "/v1/agent/bookings",
        json={"patient_ref": patient_ref, "slot_id": slot["slot_id"], "call_id": call_id},
        headers={**tenant.agent_headers, **headers},
    )


def lines_of(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_the_incident_confirmed_without_a_booking_is_refused_then_allowed_after_one(
    live_server: LiveServer, tenant: Tenant, practice: Practice, client: httpx.Client, replay: Any
) -> None:
    start_call(client, tenant, "call-incident", "pat-1")

    # 1. The agent claims a booking that does not exist: refused, and recorded.
    refused = say(client, tenant, "call-incident", INCIDENT)
    assert refused["allowed"] is False
    assert refused["reason"] == "no-active-booking-on-call"
    assert refused["confirmation_codes"] == []

    status, out = replay("call", "call-incident", "--tenant", tenant.tenant_id, "--json")
    assert status == 0
    lines = lines_of(out)
    blocked = [line for line in lines if "gate-blocked" in line["flags"]]
    assert len(blocked) == 1 and "claim-without-booking" in blocked[0]["flags"]
    # what the agent said is free text and may name anyone: masked, except the claim itself
    assert blocked[0]["fields"]["text"].endswith('claim: "you\'re confirmed"')
    assert "Tuesday" not in blocked[0]["fields"]["text"]
    assert not [line for line in lines if line["stream"].startswith("Appointment")]

    # 2. The agent books on the call; now the same sentence is true and allowed.
    slot = open_slots(client, tenant, practice, days_from=2, days=3)[0]
    booking = expect(book(client, tenant, slot, "pat-1", "call-incident"), 201)
    allowed = say(client, tenant, "call-incident", INCIDENT)
    assert allowed["allowed"] is True and allowed["reason"] == "backed-by-booking"
    assert allowed["confirmation_codes"] == [] and allowed["claim"] is not None

    status, out = replay("call", "call-incident", "--tenant", tenant.tenant_id, "--json")
    lines = lines_of(out)
    booked = next(
        line
        for line in lines
        if line["stream"] == f"Appointment {booking['appointment_id']}" and line["what"] == "booked"
    )
    said = [line for line in lines if line["what"] == "said (allowed)"]
    assert len(said) == 1 and booked["position"] < said[0]["position"]
    assert said[0]["fields"]["backing"] == [booking["appointment_id"]]

    # the readable form says the same
    status, text = replay("call", "call-incident", "--tenant", tenant.tenant_id)
    assert status == 0 and "utterance BLOCKED" in text and "said (allowed)" in text


def test_a_reschedule_backs_a_claim_and_a_cancel_withdraws_it(
    tenant: Tenant, practice: Practice, client: httpx.Client
) -> None:
    slots = open_slots(client, tenant, practice, days_from=5, days=3)
    first = expect(
        book(client, tenant, slots[0], "pat-2", "call-booked-earlier"), 201
    )  # booked on another call
    start_call(client, tenant, "call-move", "pat-2")
    claim = "I've moved your appointment, you're all set for Thursday at 10"
    assert say(client, tenant, "call-move", claim)["allowed"] is False

    expect(
        client.post(
            f"/v1/agent/appointments/{first['appointment_id']}/reschedule",
            json={"slot_id": slots[1]["slot_id"], "call_id": "call-move"},
            headers=tenant.agent_headers,
        ),
        200,
    )
    assert say(client, tenant, "call-move", claim)["reason"] == "backed-by-booking"

    expect(
        client.post(
            f"/v1/agent/appointments/{first['appointment_id']}/cancel",
            json={"call_id": "call-move"},
            headers=tenant.agent_headers,
        ),
        200,
    )
    after = say(client, tenant, "call-move", claim)
    assert after["allowed"] is False and after["reason"] == "no-active-booking-on-call"


def test_spanish_claims_are_gated_the_same_way(
    tenant: Tenant, practice: Practice, client: httpx.Client
) -> None:
    start_call(client, tenant, "llamada-1", "pat-3", language="es")
    claim = "Su cita está confirmada para el martes"
    assert say(client, tenant, "llamada-1", claim)["allowed"] is False
    # an offer and a question are no claims
    assert say(client, tenant, "llamada-1", "¿Le queda bien el martes a las 9?")["reason"] == (
        "no-claim"
    )
    slot = open_slots(client, tenant, practice, days_from=8, days=3)[0]
    expect(book(client, tenant, slot, "pat-3", "llamada-1"), 201)
    assert say(client, tenant, "llamada-1", claim)["reason"] == "backed-by-booking"


def test_a_code_in_the_text_must_verify_in_the_callers_scope(
    tenant: Tenant, practice: Practice, client: httpx.Client
) -> None:
    slot = open_slots(client, tenant, practice, days_from=11, days=3)[0]
    booked = expect(book(client, tenant, slot, "pat-1", "call-code-a"), 201)
    code = booked["confirmation_code"]
    start_call(client, tenant, "call-code-b", "pat-1")
    good = say(client, tenant, "call-code-b", f"Your confirmation code is {code}.")
    assert good["allowed"] is True and good["reason"] == "backed-by-code", good
    assert good["confirmation_codes"] == [code]
    bad = say(client, tenant, "call-code-b", "You're booked, your code is ZZZ-Z234.")
    assert bad["allowed"] is False and bad["reason"] == "code-not-verified"
    # another clinic's agent: the code does not verify there
    other = seed_tenant(tenant.server, "calls-other-clinic")
    expect(
        client.post("/v1/agent/calls", json={"call_id": "x-1"}, headers=other.agent_headers), 201
    )
    foreign = say(client, other, "x-1", f"Your code is {code}")
    assert foreign["reason"] == "code-not-verified"


def test_retries_and_lost_races_are_flagged_in_the_replay(
    tenant: Tenant, practice: Practice, client: httpx.Client, replay: Any
) -> None:
    slot = open_slots(client, tenant, practice, days_from=14, days=3)[0]
    start_call(client, tenant, "call-retry", "pat-2")
    first = book(client, tenant, slot, "pat-2", "call-retry", **{"Idempotency-Key": "k-1"})
    again = book(client, tenant, slot, "pat-2", "call-retry", **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201 and first.content == again.content
    start_call(client, tenant, "call-loser", "pat-3")
    assert_problem(book(client, tenant, slot, "pat-3", "call-loser"), 409, "slot-unavailable")

    _, out = replay("call", "call-retry", "--tenant", tenant.tenant_id, "--json")
    tools = [line for line in lines_of(out) if line["what"].startswith("tool book")]
    assert [line["flags"] for line in tools] == [[], ["idempotent-retry"]]
    assert tools[1]["fields"]["key"] == "k-1"
    _, out = replay("call", "call-loser", "--tenant", tenant.tenant_id, "--json")
    lost = [line for line in lines_of(out) if "conflict-lost" in line["flags"]]
    assert len(lost) == 1 and lost[0]["fields"]["outcome"] == "slot-unavailable"


def test_time_travel_shows_the_appointment_before_and_after_a_reschedule(
    tenant: Tenant, practice: Practice, client: httpx.Client, replay: Any
) -> None:
    slots = open_slots(client, tenant, practice, days_from=17, days=3)
    booked = expect(book(client, tenant, slots[0], "pat-3", "call-tt"), 201)
    moved = expect(
        client.post(
            f"/v1/agent/appointments/{booked['appointment_id']}/reschedule",
            json={"slot_id": slots[2]["slot_id"]},
            headers=tenant.agent_headers,
        ),
        200,
    )
    before = booked["evidence"]["position"]
    after = moved["evidence"]["position"]
    states = {}
    for at in (str(before), str(after), booked["evidence"]["recorded_at"]):
        status, out = replay("appointment", booked["appointment_id"], "--at", at, "--json")
        assert status == 0
        states[at] = json.loads(out)
    assert states[str(before)]["start"] == booked["start"]
    assert states[str(after)]["start"] == moved["start"] != booked["start"]
    assert states[booked["evidence"]["recorded_at"]]["start"] == booked["start"]
    status, out = replay("appointment", booked["appointment_id"], "--at", str(before - 1), "--json")
    assert json.loads(out) == {"exists": False}


def test_phi_is_masked_unless_asked_for_and_asking_is_audited(
    live_server: LiveServer, tenant: Tenant, practice: Practice, client: httpx.Client, replay: Any
) -> None:
    start_call(client, tenant, "call-phi", "canary")
    said = f"Thanks {CANARY_NAME}, I have {CANARY_PHONE} on file; you're confirmed, right?"
    assert say(client, tenant, "call-phi", said)["allowed"] is False
    # a call nobody started, with no patient known: its text is masked all the same
    say(client, tenant, "call-phi-implicit", f"Hello {CANARY_NAME}")
    _, masked = replay("patient", "canary", "--tenant", tenant.tenant_id)
    _, call_masked = replay("call", "call-phi", "--tenant", tenant.tenant_id)
    _, implicit = replay("call", "call-phi-implicit", "--tenant", tenant.tenant_id)
    for shown in (masked, call_masked, implicit):
        assert "Zebulon" not in shown and "Quackenbush" not in shown and "867" not in shown
    assert "patient registered" in masked
    # the patient's replay holds the call it was on although nothing was booked there
    assert "utterance BLOCKED" in masked
    auditor = tenant.token("auditor")

    def disclosures() -> list[dict[str, Any]]:
        entries = expect(
            client.get("/v1/audit", params={"patient_ref": "canary"}, headers=auditor), 200
        )["entries"]
        return [e for e in entries if e["action"] == "replay call --show-phi"]

    assert disclosures() == []
    status, unmasked = replay("call", "call-phi", "--tenant", tenant.tenant_id, "--show-phi")
    assert status == 0 and CANARY_NAME in unmasked
    assert len(disclosures()) == 1
    # --show-phi names its clinic, and another clinic's call is not found there
    status, _ = replay("call", "call-phi", "--tenant", "calls-other-clinic", "--show-phi")
    assert status == 1


def test_bad_call_requests_change_nothing(
    tenant: Tenant, practice: Practice, client: httpx.Client
) -> None:
    start_call(client, tenant, "call-bad", "pat-1")
    assert_problem(
        client.post("/v1/agent/calls", json={"call_id": "call-bad"}, headers=tenant.agent_headers),
        409,
        "already-exists",
    )
    for body in ({}, {"text": ""}, {"text": "x" * 5000}, {"text": "hi", "allowed": True}):
        assert_problem(
            client.post(
                "/v1/agent/calls/call-bad/utterances", json=body, headers=tenant.agent_headers
            ),
            422,
        )
    assert_problem(
        client.post(
            "/v1/agent/calls/call-bad/end",
            json={"duration_seconds": -1},
            headers=tenant.agent_headers,
        ),
        422,
    )
    ended = expect(
        client.post(
            "/v1/agent/calls/call-bad/end",
            json={"duration_seconds": 61, "outcome": "hung-up"},
            headers=tenant.agent_headers,
        ),
        200,
    )
    assert ended["status"] == "ended" and ended["utterances"] == 0
    assert_problem(
        client.post(
            "/v1/agent/calls/call-bad/utterances",
            json={"text": "hello?"},
            headers=tenant.agent_headers,
        ),
        409,
    )


def test_a_call_bound_token_sees_only_its_call(
    tenant: Tenant, practice: Practice, client: httpx.Client
) -> None:
    start_call(client, tenant, "call-mine", "pat-1")
    start_call(client, tenant, "call-theirs", "pat-2")
    bound = tenant.token("agent", call_id="call-mine")
    assert_problem(
        client.post("/v1/agent/calls/call-theirs/utterances", json={"text": "hi"}, headers=bound),
        404,
    )
    assert_problem(
        client.post("/v1/agent/calls/call-theirs/end", json={"duration_seconds": 1}, headers=bound),
        404,
    )
    ok = client.post("/v1/agent/calls/call-mine/utterances", json={"text": "hi"}, headers=bound)
    assert ok.status_code == 200


def test_a_patient_bound_agent_cannot_reach_or_take_over_another_patients_call(
    tenant: Tenant, practice: Practice, client: httpx.Client
) -> None:
    """Another patient's call does not exist for it: 404 at once, never a retry storm."""
    slot = open_slots(client, tenant, practice, days_from=20, days=3)[0]
    # an unbound agent books pat-2 on a call nobody started: the call has no patient of its own
    expect(book(client, tenant, slot, "pat-2", "call-unowned"), 201)
    start_call(client, tenant, "call-of-pat-2", "pat-2")
    for_pat_1 = tenant.token("agent", patient_ref="pat-1")
    for call_id in ("call-unowned", "call-of-pat-2"):
        assert_problem(
            client.post("/v1/agent/calls", json={"call_id": call_id}, headers=for_pat_1),
            404,
        )
        for path, body in (
            ("utterances", {"text": "You're all set for Tuesday at 3"}),
            ("end", {"duration_seconds": 5}),
        ):
            assert_problem(
                client.post(f"/v1/agent/calls/{call_id}/{path}", json=body, headers=for_pat_1),
                404,
            )
    other_slot = open_slots(client, tenant, practice, days_from=20, days=3)[0]
    refused = client.post(
        "/v1/agent/bookings",
        json={"patient_ref": "pat-1", "slot_id": other_slot["slot_id"], "call_id": "call-of-pat-2"},
        headers=for_pat_1,
    )
    assert_problem(refused, 404)
    assert refused.elapsed.total_seconds() < 2


def test_a_claim_checked_while_its_booking_is_cancelled_is_decided_again(
    live_server: LiveServer, tenant: Tenant, practice: Practice, client: httpx.Client
) -> None:
    """The gate reads the appointment and writes only the call; the save re-checks, under the
    log's table lock, that the appointment it read has not moved, else decides again."""
    from eventsourcing.persistence import IntegrityError

    from booking.calls import Call

    slot = open_slots(client, tenant, practice, days_from=23, days=3)[0]
    booked = expect(book(client, tenant, slot, "pat-3", "call-race"), 201)
    store = live_server.app.state.services.store
    call = store.repository.get(Call.create_id(tenant.tenant_id, "call-race"))
    read_version = booked["evidence"]["version"]
    call.uttered(
        token_id="test",
        text="You're all set",
        allowed=True,
        reason="backed-by-booking",
        claim="set",
        phrase="You're all set",
        codes=[],
        backing=[],
    )
    # the appointment moves on after the gate read it
    expect(
        client.post(
            f"/v1/agent/appointments/{booked['appointment_id']}/cancel",
            json={},
            headers=tenant.agent_headers,
        ),
        200,
    )
    before = store.recorder.max_notification_id()
    from uuid import UUID

    with pytest.raises(IntegrityError):
        store.save(call, unchanged={UUID(booked["appointment_id"]): read_version})
    assert store.recorder.max_notification_id() == before  # nothing was stored
    # through the API the same sentence is now refused: the booking is cancelled
    refused = say(client, tenant, "call-race", "You're all set")
    assert refused["allowed"] is False


def test_a_window_replay_streams_with_a_progress_bar_and_flags_holds_that_expired(
    live_server: LiveServer,
    tenant: Tenant,
    practice: Practice,
    client: httpx.Client,
    replay: Any,
) -> None:
    from datetime import UTC, datetime, timedelta

    began = datetime.now(UTC) - timedelta(seconds=1)
    slot = open_slots(client, tenant, practice, days_from=26, days=3)[0]
    start_call(client, tenant, "call-drop", "pat-1")
    held = expect(
        client.post(
            "/v1/agent/holds",
            json={"slot_id": slot["slot_id"], "patient_ref": "pat-1", "call_id": "call-drop"},
            headers=tenant.agent_headers,
        ),
        201,
    )
    # the line drops: nobody books, the hold runs out
    status, out = replay(
        "window",
        "--from",
        began.isoformat(),
        "--to",
        (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "--tenant",
        tenant.tenant_id,
        "--json",
    )
    assert status == 0
    lines = lines_of(out)
    expired = [line for line in lines if "hold-expired" in line["flags"]]
    assert [line["fields"]["hold_id"] for line in expired] == [held["hold_id"]]
    assert expired[0]["fields"]["call_id"] == "call-drop"
    whats = [line["what"] for line in lines]
    assert "call started" in whats and "slot held" in whats and lines[-1] == expired[0]
    assert all(line["tenant_id"] == tenant.tenant_id for line in lines)
    bar = replay.errors[-1]
    assert "replay [" in bar and "##############################]" in bar


def test_a_call_bound_tokens_reads_are_tool_calls_on_its_call_until_it_ends(
    tenant: Tenant, practice: Practice, client: httpx.Client, replay: Any
) -> None:
    start_call(client, tenant, "call-reads", "pat-2")
    bound = tenant.token("agent", call_id="call-reads")
    open_slots(client, tenant, practice, days_from=29, days=2, headers=bound)
    expect(client.get("/v1/agent/patients/pat-2/appointments", headers=bound), 200)
    _, out = replay("call", "call-reads", "--tenant", tenant.tenant_id, "--json")
    tools = [line["what"] for line in lines_of(out) if line["what"].startswith("tool ")]
    assert tools == ["tool availability → 200", "tool patient-appointments → 200"]
    expect(
        client.post("/v1/agent/calls/call-reads/end", json={"duration_seconds": 30}, headers=bound),
        200,
    )
    # reading after the call ended is answered and records nothing on the ended call
    expect(client.get("/v1/agent/patients/pat-2/appointments", headers=bound), 200)
    _, after = replay("call", "call-reads", "--tenant", tenant.tenant_id, "--json")
    assert len(lines_of(after)) == len(lines_of(out)) + 1  # the end, nothing else


def test_starting_an_implicit_call_cannot_give_it_another_patient(
    tenant: Tenant, practice: Practice, client: httpx.Client
) -> None:
    for_pat_1 = tenant.token("agent", patient_ref="pat-1")
    # the first thing on this call is an utterance by pat-1's agent: the call is pat-1's
    say(client, tenant, "call-implicit-1", "Hello, how can I help?", **for_pat_1)
    assert_problem(
        client.post(
            "/v1/agent/calls",
            json={"call_id": "call-implicit-1", "patient_ref": "pat-2"},
            headers=tenant.agent_headers,
        ),
        409,
    )
    started = start_call(client, tenant, "call-implicit-1", "pat-1")
    assert started["patient_ref"] == "pat-1"
