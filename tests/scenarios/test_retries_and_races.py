"""Calls where the platform or the other line gets in the way: the same booking sent three times,
one after another and all at once; an agent that books again after it already succeeded; two
agents racing for one time; a retry whose body changed; a hold sent twice.

Every clinic here: Dr Lopez, check-ups of 30 minutes, 09:00-12:00 every day (New York time)."""

from __future__ import annotations

import uuid

from tests.booking_helpers import APPOINTMENT_BOOKED, EventLog, utc
from tests.scenarios.script import Clinic, Reply, schedule_writes, spoken, together


def bookings_at(log: EventLog, clinic: Clinic, start: str) -> list[str]:
    """The appointment ids the event log holds as booked at ``start`` in this clinic."""
    return [
        str(e.stream_id)
        for e in log.appointment_events(APPOINTMENT_BOOKED)
        if e.event.tenant_id == clinic.tenant.tenant_id and e.event.start == utc(start)
    ]


def test_the_platform_retries_the_same_booking_three_times(clinic: Clinic, log: EventLog) -> None:
    """Maria books 9:30 tomorrow. The voice platform times out waiting and sends the very same
    booking again, three times. Each retry gets the first answer back, byte for byte, marked as
    a replay; the log holds one booking and nothing was written by the retries."""
    with clinic.call(patient="maria") as call:
        call.patient("Half past nine tomorrow, please.")
        offer = call.tool("check_availability", **clinic.day(1))
        half_past = offer.slot(1)
        booked = call.tool(
            "book_appointment", patient_ref="maria", slot_id=half_past["slot_id"], expect="201"
        )
        written = log.max_position()
        call.note("the platform did not see the answer in time")
        retries = [call.retry(booked, expect="201") for _ in range(3)]
        call.check(
            all(r.response.content == booked.response.content for r in retries),
            "every retry got the first answer, byte for byte",
        )
        call.check(
            all(r.response.headers.get("Idempotent-Replayed") == "true" for r in retries),
            "every retry is marked as a replay",
        )
        call.check(
            not schedule_writes(log, written),
            "the retries wrote nothing (beyond the call's own record)",
        )
        call.check(
            bookings_at(log, clinic, half_past["start"]) == [booked["appointment_id"]],
            "the log holds exactly one booking at half past nine",
        )
        call.agent(f"You're booked at {spoken(half_past)}; code {booked['confirmation_code']}.")


def test_the_platform_sends_the_same_booking_three_times_at_once(
    clinic: Clinic, log: EventLog
) -> None:
    """James books 10:00 tomorrow; a flaky connection makes the platform send that one booking
    three times at the same moment. All three get the same answer; one booking exists."""
    with clinic.call(patient="james") as call:
        call.patient("Ten tomorrow would be perfect.")
        offer = call.tool("check_availability", **clinic.day(1))
        ten = next(s for s in offer["slots"] if spoken(s).endswith("at 10:00"))
        call.agent(f"Booking {spoken(ten)} for you now.")
        key = f"{call.call_id}-book-ten"
        answers: list[Reply] = together(
            [
                lambda: call.tool(
                    "book_appointment", key=key, patient_ref="james", slot_id=ten["slot_id"]
                )
            ]
            * 3
        )
        call.check(
            len({a.response.content for a in answers}) == 1 and answers[0].status == 201,
            "all three copies got the same 201 answer",
        )
        call.check(
            bookings_at(log, clinic, ten["start"]) == [answers[0]["appointment_id"]],
            "the log holds exactly one booking at ten",
        )
        verified = call.tool(
            "verify_confirmation", confirmation_code=answers[0]["confirmation_code"]
        )
        call.check(verified["confirmed"] is True, "its code verifies")
        call.agent(f"All done, code {answers[0]['confirmation_code']}.")


def test_the_agent_books_again_after_success(clinic: Clinic, log: EventLog) -> None:
    """The booking for Ana succeeded, but the model loses track and calls the booking tool again,
    as a new request, with the slot and then with the hold it already used. Both are refused;
    nothing is written; Ana still has exactly one appointment and her code verifies."""
    with clinic.call(patient="ana") as call:
        call.patient("I'll take eleven the day after tomorrow.")
        offer = call.tool("check_availability", **clinic.day(2))
        eleven = next(s for s in offer["slots"] if spoken(s).endswith("at 11:00"))
        held = call.tool("hold_slot", slot_id=eleven["slot_id"], patient_ref="ana", expect="201")
        booked = call.tool(
            "book_appointment", patient_ref="ana", hold_id=held["hold_id"], expect="201"
        )
        written = log.max_position()
        call.note("the model forgets it has booked already")
        again = call.tool(
            "book_appointment",
            patient_ref="ana",
            slot_id=eleven["slot_id"],
            expect="409 slot-unavailable",
        )
        call.check(
            eleven["slot_id"] not in [s["slot_id"] for s in again["alternatives"]],
            "the refusal does not offer the time she already has",
        )
        call.tool(
            "book_appointment",
            patient_ref="ana",
            hold_id=held["hold_id"],
            expect="409 hold-not-active",
        )
        call.check(
            not schedule_writes(log, written),
            "neither attempt wrote anything (beyond the call's own record)",
        )
        mine = call.tool("list_patient_appointments", patient_ref="ana")
        call.check(
            [a["appointment_id"] for a in mine["appointments"]] == [booked["appointment_id"]],
            "Ana has exactly one appointment",
        )
        verified = call.tool("verify_confirmation", confirmation_code=booked["confirmation_code"])
        call.check(verified["confirmed"] is True, "and her code verifies")
        call.agent(f"You're booked at {spoken(eleven)}, code {booked['confirmation_code']}.")


def test_two_agents_race_for_one_time_and_the_loser_offers_alternatives(
    clinic: Clinic, log: EventLog
) -> None:
    """Maria and Li call at the same time; both agents see 9:00 tomorrow free and book it at the
    same moment. Exactly one gets it. The other is refused with the nearest free times, offers
    them, and books the one her patient picks. Both codes verify; the log holds one booking at
    nine."""
    with clinic.call(patient="maria") as maria, clinic.call(patient="li") as li:
        maria.patient("Nine tomorrow, please.")
        li.patient("Is nine tomorrow free?")
        nine = maria.tool("check_availability", **clinic.day(1)).slot(0)
        li.check(
            li.tool("check_availability", **clinic.day(1)).slot_id(0) == nine["slot_id"],
            "both agents are offered nine",
        )
        race = "201 or 409 slot-unavailable"
        answers = together(
            [
                lambda: maria.tool(
                    "book_appointment", patient_ref="maria", slot_id=nine["slot_id"], expect=race
                ),
                lambda: li.tool(
                    "book_appointment", patient_ref="li", slot_id=nine["slot_id"], expect=race
                ),
            ]
        )
        statuses = sorted(a.status for a in answers)
        maria.check(statuses == [201, 409], f"exactly one agent got nine ({statuses})")
        (winner, won), (loser, lost) = sorted(
            zip((maria, li), answers, strict=True), key=lambda pair: pair[1].status
        )
        winner.agent(f"You're booked at nine; code {won['confirmation_code']}.")
        alternatives = lost["alternatives"]
        loser.check(
            0 < len(alternatives) <= 3
            and nine["slot_id"] not in [a["slot_id"] for a in alternatives],
            "the refusal offers up to three other times",
        )
        loser.agent(
            "Nine was just taken. I can offer "
            + ", ".join(spoken(a) for a in alternatives)
            + ". Which would you like?"
        )
        loser.patient("The first one, please.")
        second = loser.tool(
            "book_appointment",
            patient_ref=loser.patient_ref,
            slot_id=alternatives[0]["slot_id"],
            expect="201",
        )
        for call, answer in ((winner, won), (loser, second)):
            verified = call.tool(
                "verify_confirmation", confirmation_code=answer["confirmation_code"]
            )
            call.check(verified["confirmed"] is True, f"{call.patient_ref}'s code verifies")
        loser.check(
            bookings_at(log, clinic, nine["start"]) == [won["appointment_id"]],
            "the log holds exactly one booking at nine: the winner's",
        )


def test_a_retry_whose_body_changed_is_refused(clinic: Clinic, log: EventLog) -> None:
    """The platform retries James's booking with the same Idempotency-Key, but the model has
    changed the slot in between. That is not a retry: it is refused, nothing is written, and the
    first booking stands. A fresh request books the new time."""
    with clinic.call(patient="james") as call:
        call.patient("Nine tomorrow.")
        offer = call.tool("check_availability", **clinic.day(1))
        key = f"{call.call_id}-{uuid.uuid4().hex[:8]}"
        first = call.tool(
            "book_appointment", key=key, patient_ref="james", slot_id=offer.slot_id(0)
        )
        call.patient("Hmm, no, make that half past nine.")
        written = log.max_position()
        call.tool(
            "book_appointment",
            key=key,
            patient_ref="james",
            slot_id=offer.slot_id(1),
            expect="422 idempotency-key-reuse",
        )
        call.check(
            not schedule_writes(log, written),
            "the reused key wrote nothing (beyond the call's own record)",
        )
        call.tool(
            "cancel_appointment",
            appointment_id=first["appointment_id"],
            reason="patient prefers 9:30",
            expect="200",
        )
        second = call.tool(
            "book_appointment", patient_ref="james", slot_id=offer.slot_id(1), expect="201"
        )
        call.agent(f"Half past nine it is, code {second['confirmation_code']}.")
        mine = call.tool("list_patient_appointments", patient_ref="james")
        call.check(
            sorted((a["status"], utc(a["start"])) for a in mine["appointments"])
            == [
                ("booked", utc(offer.slot(1)["start"])),
                ("cancelled", utc(offer.slot(0)["start"])),
            ],
            "James has nine cancelled and half past nine booked",
        )


def test_a_hold_sent_twice_is_still_one_hold(clinic: Clinic) -> None:
    """The platform sends Li's hold twice (same key). It is one hold: the retry answers with the
    same hold id, and Li can still hold two more times before the limit of three."""
    with clinic.call(patient="li") as call:
        call.patient("Could you keep nine tomorrow for me while I check with work?")
        offer = call.tool("check_availability", **clinic.day(1))
        held = call.tool("hold_slot", slot_id=offer.slot_id(0), patient_ref="li", expect="201")
        again = call.retry(held, expect="201")
        call.check(again["hold_id"] == held["hold_id"], "the retry names the same hold")
        call.patient("And keep ten and eleven too, just in case.")
        call.tool("hold_slot", slot_id=offer.slot_id(2), patient_ref="li", expect="201")
        call.tool("hold_slot", slot_id=offer.slot_id(4), patient_ref="li", expect="201")
        call.tool(
            "hold_slot", slot_id=offer.slot_id(5), patient_ref="li", expect="409 too-many-holds"
        )
        call.agent("I'm holding nine, ten and eleven for you; none of them is booked yet.")
