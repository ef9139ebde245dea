"""Confirmation codes a patient can read back over the phone."""

from __future__ import annotations

import secrets

# No 0/O, 1/I/L: the characters people confuse when a code is read aloud.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LENGTH = 7  # 31**7 ≈ 2.75e10 codes per tenant; a collision is caught by the index and retried


DIGITS = frozenset("23456789")


def new_code() -> str:
    """A code with at least one letter and one digit: read aloud inside a sentence it cannot be
    taken for a word or a number (the utterance gate finds codes that way)."""
    while True:
        code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        if DIGITS & set(code) and set(code) - DIGITS:
            return code


def normalise_code(raw: str) -> str | None:
    """Upper-case, drop spaces and dashes; None when it cannot be a code we issued."""
    code = raw.replace("-", "").replace(" ", "").upper()
    if not 6 <= len(code) <= 8 or any(c not in ALPHABET for c in code):
        return None
    return code
