"""Calls where plans change: the patient changes their mind, the line drops, a hold runs out while
the patient looks for a card, an appointment is moved and then cancelled, a patient wants a fourth
hold, and a move collides with someone else's hold.

Every clinic here: Dr Lopez, check-ups of 30 minutes, 09:00-12:00 every day (New York time)."""

from __future__ import annotations

from tests.booking_helpers import utc
from tests.scenarios.script import Clinic, spoken


def test_the_patient_changes_their_mind_between_hold_and_book(clinic: Clinic) -> None:
    """Maria asks for a check-up tomorrow. The agent holds 9:00 for her; then she prefers 9:30.
    The agent holds 9:30 and books it. Maria has one appointment, at 9:30. Her 9:00 hold keeps
    that time from others until it runs out five minutes later; then 9:00 is offered again, and
    the stale hold cannot be booked any more."""
    with clinic.call(patient="maria") as call:
        call.patient("Hi, this is Maria. Could I come in for a check-up tomorrow morning?")
        offer = call.tool("check_availability", **clinic.day(1))
        nine, half_past = offer.slot(0), offer.slot(1)
        call.agent(f"I have {spoken(nine)} or {spoken(half_past)}. Shall I keep nine for you?")
        call.patient("Yes, nine is fine.")
        first = call.tool("hold_slot", slot_id=nine["slot_id"], patient_ref="maria", expect="201")
        call.agent("I'm holding nine o'clock for you while we finish; it is not booked yet.")
        call.patient("Oh wait, I drop my son at school at nine. Could we do half past instead?")
        second = call.tool(
            "hold_slot", slot_id=half_past["slot_id"], patient_ref="maria", expect="201"
        )
        booked = call.tool(
            "book_appointment", patient_ref="maria", hold_id=second["hold_id"], expect="201"
        )
        call.agent(f"Done: {spoken(half_past)}. Your code is {booked['confirmation_code']}.")

        mine = call.tool("list_patient_appointments", patient_ref="maria")
        call.check(
            [utc(a["start"]) for a in mine["appointments"]] == [utc(half_past["start"])],
            "Maria has exactly one appointment, at half past nine",
        )
        call.check(
            nine["slot_id"] not in clinic.open_slot_ids(1),
            "nine o'clock is still held for Maria, so it is offered to nobody else",
        )
        call.later(minutes=5, seconds=1)
        call.check(
            nine["slot_id"] in clinic.open_slot_ids(1),
            "once the nine o'clock hold has run out, nine is offered again",
        )
        call.tool(
            "book_appointment",
            patient_ref="maria",
            hold_id=first["hold_id"],
            expect="409 hold-not-active",
        )


def test_the_line_drops_after_a_hold(clinic: Clinic) -> None:
    """James asks for the earliest check-up the day after tomorrow; the agent holds it and the
    line drops. While the hold lasts Ana cannot get that time; five minutes later the hold has run
    out by itself (no job had to run), the slot is offered again and Ana books it. When James calls
    back, his old hold is worth nothing and the agent books him the next free time."""
    with clinic.call(patient="james") as james:
        james.patient("Hello, I need a check-up, the earliest you have the day after tomorrow.")
        offer = james.tool("check_availability", **clinic.day(2))
        earliest = offer.slot(0)
        james.agent(f"The earliest is {spoken(earliest)}. Let me hold it for you.")
        held = james.tool(
            "hold_slot", slot_id=earliest["slot_id"], patient_ref="james", expect="201"
        )
        james.patient("Great, and could you also tell me whether —")
        james.hang_up(outcome="line dropped")

    with clinic.call(patient="ana") as ana:
        ana.patient("Hi, do you have anything early the day after tomorrow?")
        offer = ana.tool("check_availability", **clinic.day(2))
        ana.check(
            offer.slot_id(0) != earliest["slot_id"], "James's held time is not offered to Ana"
        )
        ana.patient("Nothing at nine? I really need nine.")
        ana.tool(
            "book_appointment",
            patient_ref="ana",
            slot_id=earliest["slot_id"],
            expect="409 slot-unavailable",
        )
        ana.agent("Someone is holding nine right now. Can you stay on the line a few minutes?")
        ana.later(minutes=5, seconds=1)
        offer = ana.tool("check_availability", **clinic.day(2))
        ana.check(
            offer.slot_id(0) == earliest["slot_id"],
            "five minutes on, James's hold has run out and nine is free again",
        )
        booked = ana.tool(
            "book_appointment", patient_ref="ana", slot_id=earliest["slot_id"], expect="201"
        )
        ana.agent(f"Nine it is. Your code is {booked['confirmation_code']}.")

    with clinic.call(patient="james") as back:
        back.patient("Hi, I got cut off earlier. You were holding a time for me.")
        back.tool(
            "book_appointment",
            patient_ref="james",
            hold_id=held["hold_id"],
            expect="409 hold-not-active",
        )
        offer = back.tool("check_availability", **clinic.day(2))
        back.agent(f"I'm sorry, that time has gone. The next one is {spoken(offer.slot(0))}.")
        back.patient("Fine, I'll take it.")
        booked = back.tool(
            "book_appointment", patient_ref="james", slot_id=offer.slot_id(0), expect="201"
        )
        back.check(utc(booked["start"]) > utc(earliest["start"]), "James got a later time")


def test_a_hold_runs_out_while_the_patient_looks_for_her_card(clinic: Clinic) -> None:
    """Ana picks 10:00; the agent holds it and asks for her insurance card. She takes six minutes
    to find it. Booking from the old hold is refused (it ran out); the agent sees 10:00 is still
    free, holds it again and books it."""
    with clinic.call(patient="ana") as call:
        call.patient("I'd like a check-up in three days, at ten if you can.")
        offer = call.tool("check_availability", **clinic.day(3))
        ten = next(s for s in offer["slots"] if spoken(s).endswith("at 10:00"))
        held = call.tool("hold_slot", slot_id=ten["slot_id"], patient_ref="ana", expect="201")
        call.agent("I'm holding ten for you. Could you read me your insurance member number?")
        call.patient("Sure, just a moment, it's in my other bag...")
        call.later(minutes=6)
        call.patient("Found it! It's 4471-22.")
        call.tool(
            "book_appointment",
            patient_ref="ana",
            hold_id=held["hold_id"],
            expect="409 hold-not-active",
        )
        again = call.tool("check_availability", **clinic.day(3))
        call.check(
            ten["slot_id"] in [s["slot_id"] for s in again["slots"]],
            "ten o'clock is still free (nobody took it meanwhile)",
        )
        held = call.tool("hold_slot", slot_id=ten["slot_id"], patient_ref="ana", expect="201")
        booked = call.tool(
            "book_appointment", patient_ref="ana", hold_id=held["hold_id"], expect="201"
        )
        call.agent(f"Thanks for waiting. Ten o'clock; your code is {booked['confirmation_code']}.")
        call.check(utc(booked["start"]) == utc(ten["start"]), "Ana is booked at ten")


def test_reschedule_then_cancel_then_verify(clinic: Clinic) -> None:
    """Li books 10:00 in three days. On a second call she moves it to the next day: the
    appointment keeps its id and confirmation code, the code now verifies at the new time, and the
    old time is free again. Then she cancels: the code says not confirmed, status cancelled, and
    the new time is free too. The front desk's board agrees once it has caught up."""
    with clinic.call(patient="li") as first:
        first.patient("Hi, Li here. A check-up in three days, ten o'clock please.")
        offer = first.tool("check_availability", **clinic.day(3))
        ten = next(s for s in offer["slots"] if spoken(s).endswith("at 10:00"))
        booked = first.tool("book_appointment", patient_ref="li", slot_id=ten["slot_id"])
        code = booked["confirmation_code"]
        first.agent(f"You're booked for {spoken(ten)}, code {code}.")

    with clinic.call(patient="li") as second:
        second.patient(f"Hello again. I need to move my appointment, code {code}, one day later.")
        found = second.tool("verify_confirmation", confirmation_code=code.lower())
        second.check(found["confirmed"] is True, "the code Li reads out names her appointment")
        later = second.tool("check_availability", **clinic.day(4))
        moved = second.tool(
            "reschedule_appointment",
            appointment_id=found["appointment_id"],
            slot_id=later.slot_id(0),
            expect="200",
        )
        second.check(
            (moved["appointment_id"], moved["confirmation_code"])
            == (booked["appointment_id"], code),
            "the appointment keeps its id and its confirmation code",
        )
        second.agent(f"Moved to {spoken(later.slot(0))}; your code stays {code}.")
        verified = second.tool("verify_confirmation", confirmation_code=code)
        second.check(
            verified["confirmed"] is True and utc(verified["start"]) == utc(later.slot(0)["start"]),
            "the code verifies at the new time",
        )
        second.check(ten["slot_id"] in clinic.open_slot_ids(3), "the old time is free again")
        second.patient("Actually, I'll be travelling. Please just cancel it.")
        cancelled = second.tool(
            "cancel_appointment",
            appointment_id=booked["appointment_id"],
            reason="patient travelling",
            expect="200",
        )
        second.agent("Your appointment is cancelled.")
        after = second.tool("verify_confirmation", confirmation_code=code)
        second.check(
            after["confirmed"] is False and after["status"] == "cancelled",
            "the code now says: not confirmed, cancelled",
        )
        second.check(later.slot_id(0) in clinic.open_slot_ids(4), "the new time is free again")
        board = clinic.board(days_ahead=(3, 4), min_position=cancelled["evidence"]["position"])
        second.check(
            [(a["appointment_id"], a["status"]) for a in board]
            == [(booked["appointment_id"], "cancelled")],
            "the front desk's board shows the one appointment, cancelled",
        )


def test_a_patient_wants_a_fourth_hold(clinic: Clinic) -> None:
    """James cannot decide and the agent tries to hold four times for him. The fourth is refused:
    three holds at once at most. Booking one of the three frees a place, so the fourth can be
    held; a fifth is refused again until the other holds run out."""
    with clinic.call(patient="james") as call:
        call.patient("I'm flexible. What do you have tomorrow?")
        offer = call.tool("check_availability", **clinic.day(1))
        holds = [
            call.tool("hold_slot", slot_id=offer.slot_id(i), patient_ref="james", expect="201")
            for i in range(3)
        ]
        call.tool(
            "hold_slot", slot_id=offer.slot_id(3), patient_ref="james", expect="409 too-many-holds"
        )
        call.agent("I can keep three times for you at once. Which of these suits you best?")
        call.patient("The second one. But keep the others open, I may bring my wife.")
        call.tool(
            "book_appointment", patient_ref="james", hold_id=holds[1]["hold_id"], expect="201"
        )
        call.tool("hold_slot", slot_id=offer.slot_id(3), patient_ref="james", expect="201")
        call.tool(
            "hold_slot", slot_id=offer.slot_id(4), patient_ref="james", expect="409 too-many-holds"
        )
        call.patient("Let me ask her... [several minutes pass]")
        call.later(minutes=5, seconds=1)
        call.tool("hold_slot", slot_id=offer.slot_id(4), patient_ref="james", expect="201")
        mine = call.tool("list_patient_appointments", patient_ref="james")
        call.check(len(mine["appointments"]) == 1, "James has one appointment, not four")


def test_a_move_onto_a_time_someone_else_holds_is_offered_alternatives(clinic: Clinic) -> None:
    """Maria has 9:00 tomorrow and wants 11:00, but James is holding 11:00 on another line. The
    move is refused with the nearest free times; the agent offers them and moves Maria to one.
    James then books his 11:00 from his hold."""
    with clinic.call(patient="maria") as maria:
        maria.patient("I'd like nine tomorrow, please.")
        offer = maria.tool("check_availability", **clinic.day(1))
        booked = maria.tool("book_appointment", patient_ref="maria", slot_id=offer.slot_id(0))
        eleven = next(s for s in offer["slots"] if spoken(s).endswith("at 11:00"))
        with clinic.call(patient="james") as james:
            james.patient("Could I have eleven tomorrow?")
            held = james.tool(
                "hold_slot", slot_id=eleven["slot_id"], patient_ref="james", expect="201"
            )
            maria.patient("Sorry, could we make mine eleven instead?")
            refused = maria.tool(
                "reschedule_appointment",
                appointment_id=booked["appointment_id"],
                slot_id=eleven["slot_id"],
                expect="409 slot-unavailable",
            )
            alternative = refused.slot(0)
            maria.check(
                eleven["slot_id"] not in [s["slot_id"] for s in refused["alternatives"]],
                "the alternatives do not include the held time",
            )
            maria.agent(f"Eleven is taken. I can do {spoken(alternative)}. Would that work?")
            maria.patient("Yes, that's fine.")
            moved = maria.tool(
                "reschedule_appointment",
                appointment_id=booked["appointment_id"],
                slot_id=alternative["slot_id"],
                expect="200",
            )
            james.tool(
                "book_appointment", patient_ref="james", hold_id=held["hold_id"], expect="201"
            )
            james.agent("You're booked for eleven.")
        maria.check(
            utc(moved["start"]) == utc(alternative["start"]), "Maria moved to the alternative"
        )
