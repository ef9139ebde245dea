"""Calls where what the agent says is the point: every line goes through the utterance gate, and a
line telling the patient they are booked must be backed by a booking made on this call (or carry
a confirmation code that verifies). The gate's verdicts, allowed or not, are the call's record.

Every clinic here: Dr Lopez, check-ups of 30 minutes, 09:00-12:00 every day (New York time)."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from booking.calls import Call as CallRecord
from tests.booking_helpers import EventLog, read_model, utc
from tests.scenarios.script import Call, Clinic, spoken

MADE_UP_CODE = "K7M2Q9P"  # the shape of a real code; no booking carries it


def said_on(log: EventLog, clinic: Clinic, call: Call) -> list[tuple[str, bool]]:
    """What the call's record says the agent tried to say, and the gate's verdict on each."""
    stream = CallRecord.create_id(clinic.tenant.tenant_id, call.call_id)
    return [
        (e.event.text, e.event.allowed)
        for e in log.events(topics=("booking:Call.Uttered",))
        if e.stream_id == stream
    ]


def test_the_agent_tries_to_confirm_without_booking(clinic: Clinic, log: EventLog) -> None:
    """James wants ten tomorrow. The agent holds it, then gets ahead of itself: it tells James he
    is all set, that they will see him, and reads out a code it made up. The gate refuses all three
    (nothing is booked on this call; the code verifies nowhere). The agent books from its hold,
    and now the same words are allowed. The call's record keeps every line with its verdict."""
    with clinic.call(patient="james") as call:
        call.patient("Can I get a check-up tomorrow at ten?")
        offer = call.tool("check_availability", **clinic.day(1))
        ten = next(s for s in offer["slots"] if spoken(s).endswith("at 10:00"))
        held = call.tool("hold_slot", slot_id=ten["slot_id"], patient_ref="james", expect="201")
        premature = "Great news, you're all set for tomorrow at ten!"
        call.agent(premature, refused="no-active-booking-on-call")
        call.agent("We'll see you tomorrow at 10.", refused="no-active-booking-on-call")
        call.agent(f"Your confirmation code is {MADE_UP_CODE}.", refused="code-not-verified")
        call.tool(
            "verify_confirmation",
            confirmation_code=MADE_UP_CODE,
            expect="404 confirmation-not-found",
        )
        call.agent("I'm holding ten for you; it is not booked yet. Shall I book it?")
        call.patient("Yes please.")
        booked = call.tool(
            "book_appointment", patient_ref="james", hold_id=held["hold_id"], expect="201"
        )
        verdict = call.agent(premature)
        call.check(verdict["reason"] == "backed-by-booking", "now the booking backs the words")
        call.agent(f"Your confirmation code is {booked['confirmation_code']}.")
        call.check(
            said_on(log, clinic, call)
            == [
                (premature, False),
                ("We'll see you tomorrow at 10.", False),
                (f"Your confirmation code is {MADE_UP_CODE}.", False),
                ("I'm holding ten for you; it is not booked yet. Shall I book it?", True),
                (premature, True),
                (f"Your confirmation code is {booked['confirmation_code']}.", True),
            ],
            "the call's record holds every line the agent tried, with the gate's verdict",
        )


def test_a_patient_calls_back_to_check_her_booking(clinic: Clinic) -> None:
    """Maria booked nine tomorrow on an earlier call. When she calls back, nothing is booked on
    this call, so the agent may not just say she is all set: it verifies her code and reads it back,
    which is allowed. She moves to ten on this call; the move backs the agent's words."""
    with clinic.call(patient="maria") as first:
        first.patient("Nine tomorrow, please.")
        offer = first.tool("check_availability", **clinic.day(1))
        booked = first.tool("book_appointment", patient_ref="maria", slot_id=offer.slot_id(0))
        first.agent("You're all set for tomorrow at nine.")
        code = booked["confirmation_code"]

    with clinic.call(patient="maria") as call:
        call.patient(f"Hi, just checking that I'm booked for tomorrow. My code is {code}.")
        call.agent("Yes, you're all set for tomorrow at nine.", refused="no-active-booking-on-call")
        verified = call.tool("verify_confirmation", confirmation_code=code)
        call.check(verified["confirmed"] is True, "her code verifies")
        call.agent(f"Yes: code {code} is confirmed for {spoken(verified.json)}.")
        call.patient("Could I come at ten instead?")
        ten = next(s for s in offer["slots"] if spoken(s).endswith("at 10:00"))
        moved = call.tool(
            "reschedule_appointment",
            appointment_id=booked["appointment_id"],
            slot_id=ten["slot_id"],
            expect="200",
        )
        verdict = call.agent("Done, your appointment has been moved to ten tomorrow.")
        call.check(verdict["reason"] == "backed-by-booking", "the move on this call backs it")
        call.check(utc(moved["start"]) == utc(ten["start"]), "Maria is now at ten")


def test_a_spanish_call(clinic: Clinic, log: EventLog) -> None:
    """Ana calls in Spanish. The agent offers two times, holds nine, and says too early that her
    appointment is confirmed: refused. It books, tells her, reads her code: allowed. She moves to
    ten, then cancels; after the cancel, "see you tomorrow" and her old code are refused. The front
    desk's call economics count the call under Spanish."""
    with clinic.call(patient="ana", language="es") as call:
        call.patient("Hola, quisiera una cita para mañana por la mañana.")
        offer = call.tool("check_availability", **clinic.day(1))
        nine, ten = offer.slot(0), offer.slot(2)
        call.agent("Tengo a las 9:00 o a las 9:30. ¿Cuál prefiere?")
        call.patient("A las nueve, por favor.")
        held = call.tool("hold_slot", slot_id=nine["slot_id"], patient_ref="ana", expect="201")
        call.agent(
            "Perfecto, su cita está confirmada para mañana a las 9.",
            refused="no-active-booking-on-call",
        )
        booked = call.tool(
            "book_appointment", patient_ref="ana", hold_id=held["hold_id"], expect="201"
        )
        code = booked["confirmation_code"]
        call.agent("Listo, su cita quedó agendada para mañana a las 9.")
        call.agent(f"Su código de confirmación es {code}.")
        call.patient("¿Podría ser a las diez mejor?")
        call.tool(
            "reschedule_appointment",
            appointment_id=booked["appointment_id"],
            slot_id=ten["slot_id"],
            expect="200",
        )
        call.agent("Le he cambiado la cita a las 10. Lo esperamos mañana a las 10.")
        call.patient("Pensándolo bien, mejor cancélela. Lo siento.")
        call.tool("cancel_appointment", appointment_id=booked["appointment_id"], expect="200")
        call.agent("No hay problema, su cita ha sido cancelada.")
        call.agent("Nos vemos mañana a las 10.", refused="no-active-booking-on-call")
        call.agent(f"Su código es {code}.", refused="code-not-verified")
        call.later(minutes=3)

    tz = ZoneInfo(clinic.timezone)
    today = clinic.server.clock.now().astimezone(tz).date()
    with clinic.server.client() as client:
        economics = read_model(
            client,
            "/v1/staff/call-economics",
            {
                "date_from": (today - timedelta(days=1)).isoformat(),
                "date_to": (today + timedelta(days=1)).isoformat(),
            },
            clinic.tenant.staff_headers,
            log.max_position(),
        )
    spanish = economics["by_language"].get("es") or {}
    assert spanish.get("calls") == 1, economics
