"""Does an utterance tell the patient an appointment exists? The text half of the utterance gate.

An AI agent must not tell a patient "you're booked" unless the event store holds that booking. The
gate needs two things from the text: the first sentence that claims an appointment exists
(booked, confirmed, scheduled, set, rescheduled, or implied: "we'll see you Thursday"), and the
confirmation codes the text reads out. Offers, questions, plans, holds, negations and requests to
confirm personal details are not claims.

Regular expressions and a little clause logic, no NLP library: the rules decide what an AI may say
to a patient, so people must be able to read and review them. When a sentence plainly tells the
patient they have an appointment, we report a claim even if the wording is loose: refusing a true
statement only makes the agent look the booking up, missing a false one is the incident the gate
exists to prevent.

Matching runs on a copy of the text with curly apostrophes straightened and accents dropped, one
character for one character, so every position found there is a position in the original.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from booking.codes import LENGTH, normalise_code

Kind = Literal["booked", "confirmed", "rescheduled", "scheduled", "set", "implied"]
Language = Literal["en", "es"]


@dataclass(frozen=True)
class Claim:
    """A sentence that tells the patient an appointment exists; `phrase` is kept for the record."""

    kind: Kind
    language: Language
    phrase: str


# --- confirmation codes ---------------------------------------------------------------------------

_GROUPED_CODE = re.compile(
    r"(?<![\w'\u2019-])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![\w-])"
)  # ABC-D234, abcd234
_SPELLED_CODE = re.compile(  # A B C D 2 3 4, A-B-C-D-2-3-4: single characters and nothing else
    r"(?<![\w'\u2019-])[A-Za-z0-9](?!\w)(?:(?:\s+|\s*-\s*)[A-Za-z0-9](?!\w))+"
)
_ONE_LETTER_WORDS = frozenset("ayoeu")  # "a", "y", "o"... may sit next to a spelled code


def find_codes(text: str) -> list[str]:
    """Confirmation codes read out in `text`, normalised, without repeats, in order of appearance.

    Only whole runs count (never a window inside a longer one), and a run needs a letter and a
    digit, so words ("TUESDAY") and numbers are never codes. Issued codes are exactly LENGTH long;
    `normalise_code` is looser (6-8) for what a patient types, but in speech that would let
    "9AM-5PM" through.
    """
    found: list[tuple[int, str]] = []
    for match in _GROUPED_CODE.finditer(text):
        found.append((match.start(), match.group()))
    for match in _SPELLED_CODE.finditer(text):
        chars = re.findall(r"[A-Za-z0-9]", match.group())
        while len(chars) > LENGTH and chars[-1].lower() in _ONE_LETTER_WORDS:
            chars.pop()
        while len(chars) > LENGTH and chars[0].lower() in _ONE_LETTER_WORDS:
            chars.pop(0)
        found.append((match.start(), "".join(chars)))
    codes: list[str] = []
    for _, raw in sorted(found):
        code = normalise_code("".join(raw.split()))
        if (
            code is not None
            and len(code) == LENGTH
            and any(c.isdigit() for c in code)
            and any(c.isalpha() for c in code)
            and code not in codes
        ):
            codes.append(code)
    return codes


# --- building blocks for the claim patterns -------------------------------------------------------
# In a rule a literal space means "some whitespace"; fragments below use \s themselves.

_ADV = r"(?:now|all|officially|already|successfully|definitely|totally|just|also|still|both|really|fully|(?:gone|went|go)\s+ahead\s+and)"
_APPT = r"(?:appointment|appt|visit|booking|reservation|consult(?:ation)?|cleaning|check-?up|exam|follow-?up|session|procedure|physical)s?"
# "your slot" is the patient's; "that slot is booked" is usually somebody else's
_NP = rf"(?:(?:your|the|this|that)\s+(?P<gap_np>(?:[\w'.:-]+\s+){{0,3}}?){_APPT}|your\s+(?:[\w'.:-]+\s+){{0,2}}?(?:slot|spot|time))"
_MONTH = (
    r"(?:january|february|march|april|may|june|july|august|september|october|november|december)"
)
_DAY = rf"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|today|tonight|next\s+week|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?|the\s+\d{{1,2}}(?:st|nd|rd|th))\b"
_NUMBER_WORD = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_TIME = (
    r"(?:\d{1,2}(?:[:.]\d{2})?(?:\s?(?:[ap]\.?\s?m\b\.?|o'?clock))?(?![\d:])"
    r"(?!\s*(?:min|mins|minutes?|hours?|hrs|days?|weeks?|months?|years?|dollars|pesos|percent|%))"
    rf"|noon|midday|{_NUMBER_WORD}(?:\s+o'?clock|\s+(?:thirty|fifteen|forty-five))?\b)"
)
_WHEN = rf"(?:(?:on|this|next|at|for)\s+)*(?:{_DAY}|{_TIME})"
_DIA = r"(?:lunes|martes|miercoles|jueves|viernes|sabado|domingo|manana|hoy|pasado\s+manana)\b"
_CUANDO = (
    rf"(?:(?:para\s+)?(?:(?:el|este|esta|la|las|proximo|pasado)\s+)*(?:dia\s+)?"
    rf"(?:{_DIA}|\d{{1,2}}\b(?!\s*(?:min|minutos|horas|pesos|dolares|anos|%)))|a\s+las?\s+\d|a\s+la\s+una)"
)
_CITA = r"(?:cita|consulta|visita|reserva|limpieza)s?"
_PARTICIPIO = r"(?:(?:confirmad|agendad|programad|reservad|reprogramad|cambiad|movid|apuntad|anotad|hech)[oa]s?)"
_START = r"(?:^[\s\"'¡]*|(?<=[,;:!\u2014\u2013])\s*)"  # sentence or clause start

_FRAGMENTS = {
    "ADV": _ADV, "APPT": _APPT, "NP": _NP, "DAY": _DAY, "TIME": _TIME, "WHEN": _WHEN,
    "CUANDO": _CUANDO, "CITA": _CITA, "PARTICIPIO": _PARTICIPIO, "START": _START,
}  # fmt: skip


def _compile(rule: str) -> re.Pattern[str]:
    pattern = rule.replace(" ", r"\s+")
    for name, fragment in _FRAGMENTS.items():
        pattern = pattern.replace(f"<{name}>", fragment)
    return re.compile(pattern, re.IGNORECASE)


@dataclass(frozen=True)
class _Rule:
    language: Language
    pattern: re.Pattern[str]
    kind: Kind | None = None  # None: named by the claim word, group "w"
    subject_free: bool = False  # no subject in the pattern: check it is not a personal detail


def _en(rule: str, kind: Kind | None = None) -> _Rule:
    return _Rule("en", _compile(rule), kind)


def _es(rule: str, kind: Kind | None = None, subject_free: bool = False) -> _Rule:
    return _Rule("es", _compile(rule), kind, subject_free)


# A group "fut" marks a future form ("you'll be all set"): a claim only when nothing in the
# sentence makes it a plan. Groups named "gap..." are words skipped over; an offer word there
# ("the next available appointment is...") makes it an offer.
_RULES = (
    # you're (all) set / booked / down for / good to go
    _en(r"\b(?:you(?:'?re| are| were|'?ve been| have been)|we(?:'re| are)|(?P<fut>you(?:'?ll| will| should) be))(?: <ADV>)* "
        r"(?P<w>set(?! aside)|booked|confirmed|scheduled|rescheduled|good to go|good(?= (?:for|on)\b)"
        r"|down for|in for|on the (?:schedule|calendar|books|list)|(?:locked|penciled|pencilled|signed) (?:in|up)|moved)\b"),
    # it's booked / everything is set / your appointment has been moved
    _en(r"\b(?:it|that|this|everything|<NP>(?P<gap>(?: [\w'.-]+){0,4}?))(?:'?s been| has been| had been|(?P<fut> will be|'ll be| should be)|'?s| is| was)(?: <ADV>)* "
        r"(?P<w>booked|confirmed|scheduled|rescheduled|reserved|moved|(?:changed|switched) to|set(?! aside)"
        r"|(?:locked|penciled|pencilled) in|good to go|finali[sz]ed|complete(?:d)?|on the (?:schedule|calendar|books)|in the system)\b"),
    # I've booked you / we moved your appointment
    _en(r"\b(?:i|we)(?:'?ve| have)?(?: <ADV>)* (?P<w>booked|confirmed|scheduled|rescheduled|reserved|moved|switched|changed) "
        r"(?:(?:you|it|that|this|everything)\b|<NP>|(?:(?:for|on|this|next) )*<DAY>)"),
    _en(r"\b(?:i|we)(?:'?ve| have)?(?: <ADV>)* made <NP>", "booked"),
    _en(r"\b(?:i|we)(?:'?ve| have)?(?: <ADV>)* (?:got|have|put) you (?P<w>down|in|booked|scheduled|confirmed|set|on the (?:schedule|calendar|books))\b"),
    _en(r"\b(?:i|we)(?:'?ve| have)?(?: <ADV>)* (?:(?:penciled|pencilled|slotted|squeezed|fit|fitted) you in|locked (?:you|it|that) in)\b", "booked"),
    _en(r"\b(?:i|we)(?:'?ve| have)?(?: <ADV>)* set you up\b", "set"),
    # your booking went through / the appointment has been made / got you in for Tuesday
    _en(r"\b<NP> (?:has |have |had )?(?:gone|went) through\b", "booked"),
    _en(r"\b<NP>(?:'?s been| has been| had been| is| was) (?:all )?made\b", "booked"),
    _en(r"<START>(?:(?:ok(?:ay)?|great|perfect|alright|all right) )?got you (?:in|down|booked|scheduled|set)\b", "booked"),
    # Tuesday at 3 is booked for you
    _en(r"(?:'s|\bis|\bare|\bhas been|\bhave been) (?:all )?(?P<w>booked|confirmed|reserved|scheduled|set) for you\b"),
    # Confirmed for Tuesday at 3! / All set.
    _en(r"<START>(?:(?:appointment|booking|all) )?(?P<w>set|booked|confirmed|scheduled|rescheduled|complete)"
        r"(?=[\s!.,]*$|[!.,\u2014\u2013-]| (?:for|on|at|and|with|to)\b)"),
    # we'll see you Thursday / see you then / looking forward to seeing you on Monday
    _en(r"(?:\b(?:we|i|she|he|they|dr\.? [a-z]+|doctor [a-z]+|the (?:doctor|dentist|hygienist))(?:'?ll| will| shall)(?: <ADV>)* see"
        r"|<START>see|\blook(?:ing)? forward to seeing|\b(?:we'?re|we are|we'?ll be|we will be) expecting) "
        r"you (?:(?:on|this|next|at|in|again) )*(?:<DAY>|<TIME>|then\b|there\b)", "implied"),
    # your appointment is on Tuesday at 3
    _en(r"\b<NP> (?P<gap>(?:[\w'.-]+ ){0,4}?)(?:(?P<fut>will be|'?ll be)|is now|is still|is|'?s|was) <WHEN>", "implied"),
    _en(r"\byou(?: now| already| still)? (?:have|'?ve got|have got)(?: now| already)? (?:an?|your|the|one) "
        r"(?P<gap>(?:[\w'.:-]+ ){0,3}?)<APPT> (?:on|for|at|with|this|next|tomorrow|today|booked|confirmed|scheduled|set)\b", "implied"),
    _en(r"\b(?:your|the) (?:confirmation|booking|appointment) (?:code|number|#) (?:is|'?s|(?P<fut>will be))\b", "confirmed"),
    # su cita está confirmada / quedó agendada / la tengo reservada
    _es(r"\b(?:(?P<fut>quedara|estara|sera)|esta|estan|queda|quedo|quedan|quedaron|ha quedado|han quedado|fue|fueron"
        r"|ha sido|han sido|sigue|(?:la|lo|le) (?:tengo|tenemos))(?: (?:ya|todo|bien|usted|ud\.?|oficialmente|debidamente|correctamente))* "
        r"(?P<w><PARTICIPIO>)\b", subject_free=True),
    # le he agendado / ya le reservé / le cambié la cita (not "que la agende": that is a wish)
    _es(r"(?<!que\s)\b(?:(?:ya|yo) (?:(?:se )?(?:le|la|lo|les|las|los|te) )?|(?:se )?(?:le|la|lo|les|las|los|te) )(?:(?:he|hemos) )?(?:ya )?"
        r"(?P<w>(?:agend|reserv|program|confirm|reprogram|cambi|apunt|anot)(?:e|ad[oa])|mov(?:i|id[oa]))\b", subject_free=True),
    _es(r"\b(?:he|hemos) (?:ya )?(?P<w>(?:agend|reserv|program|confirm|reprogram|cambi|apunt|anot)ad[oa]|movid[oa])\b", subject_free=True),
    _es(r"\b(?:le |se lo |se la )?confirmo (?:que )?(?:su|la|tu) (?:\w+ ){0,2}?<CITA>\b", "confirmed"),
    # ya está todo listo
    _es(r"\bya (?:esta|quedo|queda) (?:todo |usted )?list[oa]s?\b|\btodo (?:ya )?(?:(?:esta|quedo|queda) )?(?:ya )?list[oa]\b"
        r"|\b(?:esta|quedo|queda) todo list[oa]\b|\bya quedo (?:su|la|tu) <CITA>", "set"),
    # Confirmada para el martes.
    _es(r"<START>(?:(?:cita|reserva) )?(?P<w><PARTICIPIO>)(?=[\s!.,]*$|[!.,]| (?:para|el|a las|y)\b)"),
    # la esperamos el martes / nos vemos el jueves
    _es(r"\b(?:lo|la|los|las|le|te) (?:esperamos|esperaremos|estaremos esperando|espera (?:el doctor|la doctora|el dr\.?|la dra\.?)(?: [a-z]+)?)"
        r"(?: (?:entonces|con gusto|aqui))? (?:<CUANDO>|entonces\b)", "implied"),
    _es(r"\bnos (?:vemos|veremos) (?:<CUANDO>|entonces\b|alla\b|ahi\b)", "implied"),
    # su cita es / será / quedó el martes
    _es(r"\b(?:su|tu|la|sus) (?P<gap_pre>(?:[\w.-]+ ){0,2}?)<CITA> (?P<gap>(?:[\w.:-]+ ){0,5}?)"
        r"(?:(?P<fut>sera|quedara)|es|quedo|queda|ha quedado|esta|sigue siendo|sigue)(?: (?:ya|entonces|ahora))? <CUANDO>", "implied"),
    # ya tiene su cita
    _es(r"\bya (?:usted )?tiene (?:su |una |la )?(?:nueva )?<CITA>\b"
        r"|\btiene (?:su |una |la )?(?:nueva )?<CITA> (?:<CUANDO>|con\b|confirmad|agendad)", "implied"),
    _es(r"\b(?:su|tu|el) (?:codigo|numero) de (?:confirmacion|reserva|cita) (?:(?P<fut>sera)|es)\b", "confirmed"),
)  # fmt: skip

_KIND_BY_STEM: tuple[tuple[str, Kind], ...] = (
    ("resched", "rescheduled"), ("reprogram", "rescheduled"), ("mov", "rescheduled"),
    ("cambi", "rescheduled"), ("changed", "rescheduled"), ("switched", "rescheduled"),
    ("confirm", "confirmed"),
    ("schedul", "scheduled"), ("program", "scheduled"), ("agend", "scheduled"),
    ("set", "set"), ("good", "set"), ("lock", "set"), ("list", "set"),
)  # fmt: skip

# --- clause logic ---------------------------------------------------------------------------------

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'", "`": "'"})
_SENTENCE_END = re.compile(
    r"(?<!\b[ap]\.m)(?<!\bdr)(?<!\bdra)(?<!\bmr)(?<!\bmrs)(?<!\bms)(?<!\bsr)(?<!\bsra)(?<!\bst)"
    r"[.!?\u2026]+[\"')\]\u201d]*(?=\s|$)|\n|(?=[¿¡])",  # not "9.30", "a.m.", "Dr."
    re.IGNORECASE,
)
_QUESTION = re.compile(r"^\s*¿|\?[\s!?\"')\u201d]*$")
_TAG = _compile(r"(?:,|\s)\s*(?:right|correct|ok|okay|yes|yeah|verdad|cierto|no)\s*\?[\s!?]*$")
_ASKING = _compile(
    r"[\s\"'¿,;:()\u2014\u2013-]*(?:can|could|shall|should|would|will|do|does|did|is|are|am|was|were|have|has|may|might"
    r"|what|when|where|which|who|how|why)\b"
)
_CLAUSE_CUT = re.compile(r"[;()\u2014\u2013]|[,:](?!\d)|\s-\s")
_CONJUNCTION = _compile(r"\b(?:but|and|so|though|although|however|pero|y|aunque|sino|asi que)\b")
# Said in passing, these are not the negations, conditions or plans they look like.
_IDIOMS = _compile(
    r"\b(?:no problem|not a problem|no worries|(?:don'?t|do not) (?:worry|forget)"
    r"|before (?:you go|you hang up|we hang up|i let you go|i forget)|antes de que (?:se me olvide|se vaya|cuelgue)"
    r"|if you (?:have any questions|need anything(?: else)?|need to (?:cancel|reschedule|change it))"
    r"|no hay problema|no se preocupe|no te preocupes|no pasa nada|no (?:se )?(?:le )?olvide"
    r"|si (?:tiene|necesita) (?:alguna pregunta|algo m[aá]s|cancelar|reprogramar|cambiar\w*))\b"
)
# Searched with accents kept: "si" is a condition, "sí" (yes) is not.
_CONDITION = _compile(
    r"\b(?:(?:once|if|when|whenever|as soon as|unless|una vez que|cuando|cu[aá]ndo|en cuanto|tan pronto como"
    r"|despu[eé]s de que|antes de que|hasta que|si(?!\s*,))\b"
    r"|(?:after|before|until|till) (?=(?:i|we|you|it|that|this|they)\b)"
    r"|(?:i'?ll|i will|we'?ll|we will|let me|let's|lemme|i'?m going to|i am going to|we'?re going to|i'?m gonna"
    r"|i'?m about to|i need to|voy a|vamos a|le voy a|d[eé]j[ae]me|perm[ií]tame|necesito)"
    r" (?:go ahead and |just |quickly |now )?(?:book|schedule|reschedule|reserve|move|lock|get you|put you|set you"
    r"|pencil|agend|program|reserv|reprogram|cambi|mov))"
)
_LATER = _compile(
    r"\b(?:shortly|soon|in a (?:moment|minute|second|bit)|momentarily|by (?:text|email|e-mail|sms|message)"
    r"|pronto|en (?:un momento|breve)|por (?:mensaje|correo|texto))\b"
)
_NEGATION = _compile(
    r"\b(?:not|never|no|nothing|nobody|none|neither|nor|cannot|isnt|arent|wasnt|werent|havent|hasnt|hadnt"
    r"|dont|doesnt|didnt|cant|couldnt|wont|wouldnt|shouldnt|nunca|nada|ning[uú]n[oa]?|tampoco|jam[aá]s)\b|n't\b"
)
_TAKEN = _compile(
    r"\b(?:fully|completely|totally) booked|\bbooked (?:up|solid)\b|\b(?:it|that|this)(?:'?s| is| was) already (?:booked|taken|reserved)"
)
_OFFER = _compile(
    r"\b(?:available|open|opening|openings|earliest|free|disponibles?|libres?|i have|we have|i can|we can|i could|we could"
    r"|tengo|tenemos|puedo|podemos)\b"
)
_DETAIL = _compile(
    r"\b(?:phone|number|numero|telefono|celular|name|nombre|apellido|birth|birthday|nacimiento|dob|address|direccion"
    r"|domicilio|email|e-mail|correo|insurance|seguro|poliza|policy|details|datos|informacion|information|info|identity"
    r"|identidad|zip|pharmacy|farmacia|payment|pago|tarjeta|card)\b"
)


def find_claim(text: str) -> Claim | None:
    """The first sentence in `text` that tells the patient an appointment exists, or None."""
    plain = text.translate(_APOSTROPHES)
    folded = "".join(unicodedata.normalize("NFD", c)[0] for c in plain)  # á -> a, one for one
    scrubbed = _IDIOMS.sub(lambda m: " " * len(m.group()), plain)
    for start, end in _sentences(plain):
        claim = _sentence_claim(text[start:end], folded[start:end], scrubbed[start:end])
        if claim is not None:
            return claim
    return None


def _sentences(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


@dataclass(frozen=True)
class _Sentence:
    """One sentence three ways, same length: `folded` finds claim words, `scrubbed` (accents kept,
    idioms blanked) finds negations and conditions, `original` gives the phrase."""

    original: str
    folded: str
    scrubbed: str
    end: int  # where the statement ends: before a trailing question, else the sentence's end
    question: bool
    clause_cuts: list[int]  # punctuation between clauses
    cuts: list[int]  # clause cuts and conjunctions ("but", "pero"): where a negation stops
    conditions: list[int]  # where "once", "if", "cuando", "I'll book"... start

    def clause(self, at: int) -> int:
        return bisect.bisect_right(self.clause_cuts, at)

    def part(self, at: int) -> tuple[int, int]:
        """The stretch between conjunctions and punctuation around position `at`."""
        before = max([c for c in self.cuts if c <= at], default=0)
        return before, min([c for c in self.cuts if c > at], default=self.end)


def _sentence_claim(original: str, folded: str, scrubbed: str) -> Claim | None:
    end = len(folded)
    clause_cuts = [m.start() for m in _CLAUSE_CUT.finditer(folded)]
    question = _QUESTION.search(folded) is not None
    if question:
        # Only a statement before the question ("You're all set, right?" / "..., anything else?")
        # can claim; a sentence opened with ¿ is a question from its first word.
        tag = _TAG.search(folded)
        if folded.lstrip().startswith("¿") or (tag is None and not clause_cuts):
            return None
        end = tag.start() if tag is not None else clause_cuts[-1]
    cuts = sorted(clause_cuts + [m.start() for m in _CONJUNCTION.finditer(folded, 0, end)])
    conditions = [m.start() for m in _CONDITION.finditer(scrubbed, 0, end)]
    sentence = _Sentence(original, folded, scrubbed, end, question, clause_cuts, cuts, conditions)

    found: list[tuple[bool, int, Claim]] = []
    for rule in _RULES:
        for match in rule.pattern.finditer(folded, 0, end):
            if _stands(sentence, rule, match):
                groups = match.groupdict()
                kind = rule.kind or _kind(groups.get("w") or "")
                phrase = original[match.start() : match.end()].strip()
                found.append((kind == "implied", match.start(), Claim(kind, rule.language, phrase)))
    # an explicit claim word names the claim better than an implied one in the same sentence
    return min(found, key=lambda f: f[:2])[2] if found else None


def _stands(sentence: _Sentence, rule: _Rule, match: re.Match[str]) -> bool:
    """Whether a matched claim phrase really claims, in its sentence."""
    start, groups = match.start(), match.groupdict()
    part_start, part_end = sentence.part(start)
    if any(_OFFER.search(v) for k, v in groups.items() if k.startswith("gap") and v):
        return False  # "the next available appointment is on Tuesday"
    if _TAKEN.search(sentence.folded, part_start, part_end):
        return False  # "we're fully booked on Monday": somebody else's
    if rule.subject_free and _DETAIL.search(sentence.folded, part_start, part_end):
        return False  # "su número está confirmado"
    if _NEGATION.search(sentence.scrubbed, part_start, match.end()):
        return False  # "it is not confirmed yet", "no está confirmada"
    clause = sentence.clause(start)
    if any(c < start and sentence.clause(c) >= clause - 1 for c in sentence.conditions):
        return False  # a condition or plan governs its own clause and the next one
    if groups.get("fut") and (
        sentence.conditions or _LATER.search(sentence.folded, 0, sentence.end)
    ):
        return False  # "you'll be all set once I confirm it", "será confirmada por mensaje"
    clause_start = sentence.clause_cuts[clause - 1] if clause else 0
    return not (sentence.question and _ASKING.match(sentence.folded, clause_start))


def _kind(word: str) -> Kind:
    word = word.lower()
    return next((kind for stem, kind in _KIND_BY_STEM if word.startswith(stem)), "booked")
