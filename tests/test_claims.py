"""The claim detector behind the utterance gate: which sentences tell a patient an appointment
exists (and so need a booking on the stream behind them), which are offers, questions, plans,
holds, negations or talk about personal details, and which confirmation codes a text reads out.

Pure text, no database: the whole corpus runs in well under a second."""

from __future__ import annotations

import pytest

from booking.claims import Claim, find_claim, find_codes

# (utterance, kind) — each tells the patient they have an appointment.
ENGLISH_CLAIMS = [
    # the examples, verbatim
    ("Great, you're confirmed for Tuesday at 9", "confirmed"),
    ("you're all set for Tuesday at 3", "set"),
    ("we'll see you Thursday", "implied"),
    # missed in review, now claims
    ("Your booking went through.", "booked"),
    ("Got you in for Tuesday at 3.", "booked"),
    ("The appointment has been made.", "booked"),
    # explicit
    ("You're booked for Tuesday at 9.", "booked"),
    ("I've booked you for Tuesday at 9 with Dr. Patel.", "booked"),
    ("I went ahead and booked you for Friday at 10.", "booked"),
    ("I've made your appointment for Tuesday at 9.", "booked"),
    ("I've penciled you in for Friday at 2.", "booked"),
    ("I've set you up for Thursday at 11.", "set"),
    ("Your appointment has been scheduled for March 3rd at 10 a.m.", "scheduled"),
    ("Everything is set for Thursday.", "set"),
    ("It's booked.", "booked"),
    ("That's confirmed for 9:30 on Tuesday.", "confirmed"),
    ("Your cleaning is confirmed.", "confirmed"),
    ("Your appointment with Dr. Smith is confirmed for Tuesday.", "confirmed"),
    ("Thanks for waiting.\nYou're booked for Tuesday.", "booked"),
    ("You're good to go for Monday morning.", "set"),
    ("You're down for Wednesday at 4:15.", "booked"),
    ("I've got you down for Friday at 10.", "booked"),
    ("We have you scheduled for Monday at 8.", "scheduled"),
    ("Tuesday at 3 is booked for you.", "booked"),
    ("Confirmed for Tuesday at 3!", "confirmed"),
    ("All set! Thanks for calling.", "set"),
    ("Great news: your appointment is booked!", "booked"),
    # rescheduled
    ("I've moved your appointment to Thursday at 2.", "rescheduled"),
    ("Your appointment has been rescheduled to Friday.", "rescheduled"),
    ("Your appointment's been moved to Thursday.", "rescheduled"),
    # implied
    ("Dr. Lee will see you on Tuesday at 9 a.m.", "implied"),
    ("See you Thursday!", "implied"),
    ("We look forward to seeing you on Monday.", "implied"),
    ("Your appointment is on Tuesday at 3.", "implied"),
    ("Your appointment with Dr. Lee is Tuesday at 3.", "implied"),
    ("You have an appointment with Dr. Lee on Tuesday at 3.", "implied"),
    ("Your confirmation code is ABC-D234.", "confirmed"),
    ("You'll be all set for Tuesday at 3.", "set"),
    ("You should be all set now.", "set"),
    # the "no" / "not" belongs to another clause
    ("No problem, you're all set.", "set"),
    ("No problem you're all set.", "set"),
    ("Don't forget, your appointment is Tuesday at 3.", "implied"),
    ("Don't forget your appointment is on Tuesday at 3.", "implied"),
    ("I'm not sure about parking, but you're booked for Tuesday.", "booked"),
    ("I'm not sure about parking but you're booked for Tuesday.", "booked"),
    # a condition governs its own clause and the next one, not the whole sentence
    ("If anything changes, just call us \u2014 you're all set for Tuesday at 3.", "set"),
    ("I'll text you a reminder, and you're all set for Tuesday.", "set"),
    ("Before you go, you're all set for Tuesday at 3.", "set"),
    # tag questions and a question after a claim
    ("You're all set for Tuesday, right?", "set"),
    ("You're all set for Tuesday right?", "set"),
    ("You're all set for Tuesday at 3 - anything else I can help with?", "set"),
    ("So you're booked for Tuesday at 3, correct?", "booked"),
    ("I've booked you for Tuesday at 3, is there anything else I can help with?", "booked"),
    ("Would you like a reminder? You're confirmed for Tuesday.", "confirmed"),
    # spelling and spacing of speech text
    ("Youre all set for tuesday at 3", "set"),
    ("You\u2019re confirmed for Tuesday.", "confirmed"),
    ("I  went ahead and   booked you for Friday.", "booked"),
    ("Okay. I checked again and you're confirmed for 9.30 on Tuesday.", "confirmed"),
    ("YOU'RE ALL SET FOR TUESDAY.", "set"),
]

ENGLISH_NON_CLAIMS = [
    # offers
    "I have Tuesday at 9 open.",
    "I can book you for Tuesday at 9.",
    "The next available appointment is on Tuesday at 9.",
    "Sorry, we're fully booked on Tuesday.",
    "Sorry, that's already booked \u2014 how about 10?",
    "We can see you Tuesday at 3.",
    "Your appointment is for 30 minutes.",
    "We're all booked up on Monday.",
    # questions
    "Would Tuesday at 9 work?",
    "Shall I book it?",
    "Do you want me to confirm it?",
    "Is your appointment on Tuesday?",
    "Are you booked for Tuesday, or was it Wednesday?",
    "Can I confirm you're booked for Tuesday, or would you prefer Wednesday?",
    # plans and conditionals
    "Once it's booked you'll get a text.",
    "After I book it, you're all set.",
    "I'll book that now.",
    "Let me schedule that for you.",
    "Let me get that booked for you.",
    "As soon as it's confirmed, I'll read you the code.",
    "When your appointment is confirmed, you'll get a text.",
    "You'll be all set once I confirm it.",
    "I'll get you booked, and then you'll be all set.",
    "Once I submit it, you should be all set.",
    "If Tuesday works, I'll book it and we'll see you then.",
    "Your confirmation code will be sent by text.",
    # holds
    "I'm holding Tuesday at 9 for you.",
    "I've put a hold on 3 pm for five minutes.",
    "I've set aside Tuesday at 9 while we finish.",
    # negations
    "It is not confirmed yet.",
    "You're not booked yet.",
    "I haven't booked it.",
    "Your appointment isn't confirmed until you get the text.",
    "I don't think you're booked for Tuesday.",
    # personal details
    "Can I confirm your date of birth?",
    "Let me confirm your phone number.",
    "I need to confirm your name.",
    "Your phone number is confirmed.",
    "I've confirmed your address.",
    # process talk and small talk
    "I'm checking availability.",
    "Let me see what's available.",
    "One moment while I look that up.",
    "Thanks for calling, have a great day!",
    "",
]

SPANISH_CLAIMS = [
    ("Su cita ya está hecha.", "booked"),
    # the example, verbatim
    ("Su cita está confirmada para el martes", "confirmed"),
    # explicit, accents optional
    ("Su cita esta confirmada para el martes.", "confirmed"),
    ("Quedó agendada para el jueves a las 10.", "scheduled"),
    ("Quedo agendada para el jueves a las 10.", "scheduled"),
    ("Su cita está programada para mañana a las 9.", "scheduled"),
    ("Su cita está reservada.", "booked"),
    ("Usted está agendada para el martes.", "scheduled"),
    ("Queda usted confirmado para el viernes.", "confirmed"),
    ("Le he agendado para el martes a las 3.", "scheduled"),
    ("He agendado su cita para el martes.", "scheduled"),
    ("Listo, le agendé con la doctora López el martes a las 3.", "scheduled"),
    ("Le reservé el martes a las 3.", "booked"),
    ("Ya le programé su limpieza.", "scheduled"),
    ("Ya está todo listo.", "set"),
    ("¡Todo listo!", "set"),
    ("Ya está confirmado.", "confirmed"),
    ("Confirmada para el martes a las 3.", "confirmed"),
    (
        "Perfecto, señora García, su cita con la doctora López quedó confirmada para el martes 3 de marzo a las 9:30.",
        "confirmed",
    ),
    ("Le confirmo su cita para el martes.", "confirmed"),
    ("Su código de confirmación es ABC-D234.", "confirmed"),
    # rescheduled
    ("Le cambié la cita al jueves.", "rescheduled"),
    ("Le reprogramé la cita para el viernes.", "rescheduled"),
    ("Su cita ha sido reprogramada para el viernes.", "rescheduled"),
    # implied
    ("La esperamos el martes.", "implied"),
    ("Lo esperamos mañana a las 9.", "implied"),
    ("Nos vemos el jueves.", "implied"),
    ("Su cita es el martes a las 3.", "implied"),
    ("Su cita será el viernes.", "implied"),
    ("Su cita quedó para el lunes.", "implied"),
    ("Ya tiene su cita.", "implied"),
    # the "no" belongs to another clause; a tag question after a claim
    ("No, su cita está confirmada.", "confirmed"),
    ("No se preocupe, ya está todo listo.", "set"),
    ("Sí, su cita está confirmada.", "confirmed"),
    ("Lo siento por la espera, su cita ya está confirmada.", "confirmed"),
    ("Antes de que se me olvide, su cita es el martes a las 3.", "implied"),
    ("Su cita es el martes, ¿verdad?", "implied"),
    ("Su cita quedó para el lunes, verdad?", "implied"),
]

SPANISH_NON_CLAIMS = [
    # offers
    "Tengo disponible el martes a las 9.",
    "Puedo agendarla para el martes a las 9.",
    "Le puedo agendar el martes a las 9.",
    "La próxima cita disponible es el martes a las 9.",
    # questions
    "¿Quiere que la agende?",
    "¿Le funciona el martes a las 9?",
    "¿Le confirmo la cita para el martes?",
    "¿Su cita es el martes?",
    "¿Ya está todo listo?",
    # plans and conditionals
    "Voy a agendar su cita.",
    "Déjeme agendarla.",
    "Cuando quede confirmada le llega un mensaje.",
    "Una vez que está confirmada, le enviamos un mensaje.",
    "Si le agendo el martes, ¿le parece bien?",
    "Voy a agendarla y su cita queda confirmada para el martes.",
    "Si la agendo hoy, su cita queda confirmada para el martes.",
    "Su cita será confirmada por mensaje.",
    # holds
    "Le estoy apartando el martes.",
    "Le aparté el martes a las 9 por cinco minutos.",
    # negations
    "No está confirmada todavía.",
    "Aún no tiene cita.",
    "Todavía no tiene cita para el martes.",
    "Todavía no le he agendado.",
    "Su cita no ha sido confirmada.",
    # personal details
    "Confirmo su fecha de nacimiento.",
    "¿Me confirma su número de teléfono?",
    "Su número de teléfono está confirmado.",
    "Le confirmé su dirección.",
    # process talk and small talk
    "Estoy revisando la disponibilidad.",
    "Déjeme ver qué horarios tenemos.",
    "Nos vemos pronto.",
    "Su cita fue cancelada.",
]


@pytest.mark.parametrize(("text", "kind"), ENGLISH_CLAIMS)
def test_english_claims(text: str, kind: str) -> None:
    claim = find_claim(text)
    assert claim is not None, text
    assert (claim.kind, claim.language) == (kind, "en"), claim


@pytest.mark.parametrize(("text", "kind"), SPANISH_CLAIMS)
def test_spanish_claims(text: str, kind: str) -> None:
    claim = find_claim(text)
    assert claim is not None, text
    assert (claim.kind, claim.language) == (kind, "es"), claim


@pytest.mark.parametrize("text", ENGLISH_NON_CLAIMS + SPANISH_NON_CLAIMS)
def test_not_claims(text: str) -> None:
    assert find_claim(text) is None


def test_the_phrase_is_the_words_that_made_the_claim() -> None:
    assert find_claim("Thanks, Maria. You\u2019re all set for Tuesday at 3.") == Claim(
        kind="set", language="en", phrase="You\u2019re all set"
    )
    claim = find_claim("Perfecto. Su cita esta confirmada para el martes.")
    assert claim is not None
    assert claim.phrase == "esta confirmada"


def test_the_first_claiming_sentence_is_reported() -> None:
    claim = find_claim(
        "Shall I book Tuesday? Once it's booked you'll get a text. We'll see you Thursday. "
        "You're confirmed."
    )
    assert claim is not None
    assert claim.phrase == "We'll see you Thursday"


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("Your confirmation code is ABC-D234.", ["ABCD234"]),
        ("your code is abcd234", ["ABCD234"]),
        ("That's A B C D 2 3 4, all right?", ["ABCD234"]),
        ("A-B-C-D-2-3-4", ["ABCD234"]),
        ("Su código es A B C D 2 3 4 y le llega un mensaje.", ["ABCD234"]),
        ("Code #XYZ9876 confirmed", ["XYZ9876"]),
        ("ABC-D234 or xyz-9876, and ABCD234 again", ["ABCD234", "XYZ9876"]),
        # ordinary words, times and numbers are not codes
        ("You're CONFIRMED for TUESDAY, SATURDAY too", []),
        ("Call 555 2345 or 555-2345, open 9AM-5PM", []),
        ("ABCDEFG 2345678", []),
        # characters we never issue (0, O, 1, I, L)
        ("ABCD230 ABCD23O LMN1234", []),
        # never a window inside a longer run
        ("XABCD2345678 ABC-D234-EFG ABCD2345 codeABCD234", []),
        ("", []),
    ],
)
def test_find_codes(text: str, codes: list[str]) -> None:
    assert find_codes(text) == codes


def test_a_claim_carrying_a_code_reports_both() -> None:
    text = "You're all set for Tuesday at 3, your code is ABC-D234."
    assert find_claim(text) is not None
    assert find_codes(text) == ["ABCD234"]


def test_every_issued_code_is_found_when_read_aloud() -> None:
    """Codes mix letters and digits, so the gate finds any of them inside a sentence."""
    from booking.codes import new_code

    for _ in range(3000):
        code = new_code()
        assert find_codes(f"Your confirmation code is {code}.") == [code]
        spaced = " ".join(code)
        assert find_codes(f"That is {spaced}, thank you") == [code]
