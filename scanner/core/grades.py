"""One order of TLS grades for every output, the diff, alerts and MQTT.

SSL Labs letters run A+ (best) to F (worst). T (the certificate is not trusted) and M (it
does not match the name) are not letters on that scale: the server also has the grade it
would get without the certificate problem, and SSL Labs shows both. So a T or M ranks just
below the letter it would have (T with an otherwise-A configuration is better than a B, worse
than a clean A) and is shown with it: "T (A if trusted)". F stays the worst of all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

LETTERS = ("A+", "A", "A-", "B", "C", "D", "E", "F")  # best first
OUT_OF_SCOPE = {"T": "if trusted", "M": "if the name matched"}
# A T or M whose would-be grade is unknown ranks between E and F: bad, never worse than F.
_UNKNOWN_WOULD_BE = 2 * LETTERS.index("F") - 1
_UNKNOWN_LETTER = 2 * len(LETTERS)  # not a grade we know: rank it worst, it needs a look


@dataclass(frozen=True)
class Grade:
    letter: str  # as the TLS check gave it: "A+", "B", "T", "M"...
    would_be: str | None = None  # T/M: the grade without the certificate problem

    @property
    def rank(self) -> int:
        return grade_rank(self.letter, self.would_be)

    @property
    def display(self) -> str:
        """'A', or 'T (A if trusted)' / 'M (B if the name matched)'."""
        condition = OUT_OF_SCOPE.get(self.letter)
        if condition and self.would_be in LETTERS:
            return f"{self.letter} ({self.would_be} {condition})"
        return self.letter


def grade_rank(letter: str, would_be: str | None = None) -> int:
    """Higher is worse; A+ is 0, F is the worst letter."""
    if letter in LETTERS:
        return 2 * LETTERS.index(letter)
    if letter in OUT_OF_SCOPE:
        return 2 * LETTERS.index(would_be) + 1 if would_be in LETTERS else _UNKNOWN_WOULD_BE
    return _UNKNOWN_LETTER


def grade_of(tls: Any) -> Grade | None:
    """The grade in a port's details.tls (None when the TLS check gave none)."""
    if not isinstance(tls, Mapping):
        return None
    letter = tls.get("grade")
    if not isinstance(letter, str) or not letter:
        return None
    would_be = tls.get("grade_if_trust_ignored")
    return Grade(letter[:8], would_be if isinstance(would_be, str) and would_be else None)


def worst_grade(grades: Iterable[Grade]) -> Grade | None:
    return max(grades, key=lambda grade: grade.rank, default=None)
