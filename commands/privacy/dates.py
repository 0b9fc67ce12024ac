"""Dates of birth: a date counts only near a birth word ("geboren", "née le", "DOB", "°").

A date is a date of birth when a birth word comes before it in the same clause, with no
meeting word in between ("geboren te Molenbeek, als tweede kind, op 12/03/2010" is one;
"geboortecijfer stijgt, evaluatie op 12/03/2026" is not), or right after it
("12/03/2010 (geboortedatum)"). An anniversary word ("verjaardag", "anniversaire") is a
birth word only with a possessive ("zijn verjaardag"), so the anniversary of an event or of
a school is not. Dates are written with any separator, as digits or with a month name,
abbreviated or not, in Dutch, French or English.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .finding import Finding

__all__ = ["dates_of_birth"]

_MONTHS = (
    "januari|janvier|january|jan|februari|février|fevrier|february|févr|fevr|fév|fev|feb"
    "|maart|mars|march|mrt|mar|april|avril|apr|avr|mei|mai|may|juni|juin|june|jun"
    "|juli|juillet|july|juil|jul|augustus|août|aout|august|aug|september|septembre|sept|sep"
    "|oktober|octobre|october|okt|oct|november|novembre|nov|december|décembre|decembre|dec|déc"
)
_YEAR = r"(?:19|20)[0-9]{2}"
_DATE_RES = (
    # 12/03/2010, 12.3.10, 12-03-2010, 12/03 (year optional)
    re.compile(
        r"(?<![0-9])(?<![0-9][./\-])(?P<d>[0-3]?[0-9])\s?[./\-]\s?(?P<m>[01]?[0-9])"
        r"(?:\s?[./\-]\s?(?P<y>(?:19|20)?[0-9]{2}))?(?![0-9])(?![./\-][0-9])"
    ),
    # 12 03 2010: spaces only, so the year must have four digits
    re.compile(rf"(?<![0-9])(?P<d>[0-3]?[0-9]) (?P<m>[01]?[0-9]) (?P<y>{_YEAR})(?![0-9])"),
    # 2010-03-12
    re.compile(
        rf"(?<![0-9])(?P<y>{_YEAR})\s?[\-/.]\s?(?P<m>[01]?[0-9])\s?[\-/.]\s?(?P<d>[0-3]?[0-9])"
        r"(?![0-9])"
    ),
    # 12 maart 2010, 1er mars 2010, 3rd of March 2010, 03-okt-2005, 12 mei (year optional)
    re.compile(
        rf"(?<![0-9])(?P<d>[0-3]?[0-9])(?:ste|ère|er|de|st|nd|rd|th|e)?[\s\-./]*(?:of\s+)?"
        rf"(?P<mon>{_MONTHS})(?!\w)\.?(?:[\s,\-./]*(?P<y>{_YEAR}))?(?![0-9])",
        re.IGNORECASE,
    ),
    # March 3, 2010
    re.compile(
        rf"(?<!\w)(?P<mon>{_MONTHS})\.?\s+(?P<d>[0-3]?[0-9])(?:st|nd|rd|th)?"
        rf"(?:,?\s*(?P<y>{_YEAR}))?(?![0-9])",
        re.IGNORECASE,
    ),
    # maart 2010, 03/2010 (month and year)
    re.compile(rf"(?<!\w)(?P<mon>{_MONTHS})\.?,?\s+(?P<y>{_YEAR})(?![0-9])", re.IGNORECASE),
    re.compile(rf"(?<![0-9./\-])(?P<m>[01]?[0-9])\s?[./\-]\s?(?P<y>{_YEAR})(?![0-9])"),
)
_POSSESSIVE = r"(?:zijn|haar|z'n|hun|mijn|son|sa|leur|his|her|their|my)\s+"
_BIRTH_WORDS = (
    r"(?<!\w)(?:geboren|geb\.|geb|geboortedatum|geboortedag|geboorte|jarig"
    r"|né|née|nés|nées|né\s?\(e\)|né\.e|date\s+de\s+naissance|naissance"
    r"|born|birth|birthday|birthdate|date\s+of\s+birth|d\.o\.b\.?|dob"
    rf"|{_POSSESSIVE}(?:verjaardag|anniversaire|anniversary))(?!\w)"
    r"|(?<!\w)°"
)
_BIRTH_RE = re.compile(_BIRTH_WORDS, re.IGNORECASE)
_BIRTH_AFTER_RE = re.compile(rf"\s?[(\[,:\-]?\s?(?:{_BIRTH_WORDS})", re.IGNORECASE)
# What ends the reach of a birth word: the end of a clause, or a word that starts talking
# about a meeting, a plan or a period rather than the person.
_GAP_BREAK_RE = re.compile(
    r"[!?;\n]|\.\s"
    r"|vergader|overleg|evalu|geëvalu|afspraak|gesprek|zitting|opvolg|gepland|vanaf|sinds|\btot\b"
    r"|gemeld|melding|besproken"
    r"|réunion|reunion|rendez|audience|suivi|prévu|prevu|depuis|jusqu|\bdès\b|signal"
    r"|meeting|hearing|deadline|planned|scheduled|since|until|\bfrom\b|review|reported",
    re.IGNORECASE,
)
_GAP_YEAR_RE = re.compile(rf"(?<![0-9]){_YEAR}(?![0-9])")
_GAP_DIGITS_RE = re.compile(r"[0-9]")
_MAX_GAP = 60


def _plausible_date(match: re.Match[str]) -> bool:
    groups = match.groupdict()
    day, month, year = groups.get("d"), groups.get("m"), groups.get("y")
    if day is not None and not 1 <= int(day) <= 31:
        return False
    if month is not None and not 1 <= int(month) <= 12:
        return False
    # Any year from 1900 on counts, the future included: the guard reads no clock (so it
    # screens alike on any date), and a date near a birth word is refused even when it lies
    # ahead (an expected birth is personal data too).
    return year is None or len(year) != 4 or int(year) >= 1900


def _near_birth_word(text: str, start: int, end: int) -> bool:
    window = text[max(0, start - _MAX_GAP - 40) : start]
    triggers = list(_BIRTH_RE.finditer(window))
    if triggers:
        gap = window[triggers[-1].end() :]
        # "geboren in 2006 op 15 december": a year may stand between; other numbers
        # (another date, a time) mean the date belongs to something else.
        gap = _GAP_YEAR_RE.sub("Y", gap)
        if (
            len(gap) <= _MAX_GAP
            and not _GAP_BREAK_RE.search(gap)
            and not _GAP_DIGITS_RE.search(gap)
        ):
            return True
    return _BIRTH_AFTER_RE.match(text, end, end + 30) is not None


def dates_of_birth(text: str) -> Iterator[Finding]:
    """Dates (full, day and month, or month and year) tied to a birth word."""
    if not _BIRTH_RE.search(text):
        return
    for pattern in _DATE_RES:
        for match in pattern.finditer(text):
            if _plausible_date(match) and _near_birth_word(text, match.start(), match.end()):
                yield Finding.DATE_OF_BIRTH
                return
