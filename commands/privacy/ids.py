"""Numbers with a check: Belgian national register and BIS numbers, IBANs.

Only check-digit valid numbers count (``python-stdnum``), so that case codes, file numbers and
counts never do. Separators are whatever people put between the groups: dots, dashes,
slashes, underscores, spaces, or nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from stdnum import iban as stdnum_iban
from stdnum import numdb
from stdnum.be import bis as stdnum_bis
from stdnum.be import nn as stdnum_nn

from .finding import Finding

__all__ = ["blank_ibans", "ibans", "national_numbers"]

# ---------------------------------------------------------- national register / BIS numbers

_SEP = r"[ ]?[.\-/_]?[ ]?"
_NN_RE = re.compile(
    rf"(?<![0-9])(?<![0-9][.\-/_])"
    rf"[0-9]{{2}}{_SEP}[0-9]{{2}}{_SEP}[0-9]{{2}}{_SEP}[0-9]{{3}}{_SEP}[0-9]{{2}}"
    rf"(?![0-9])(?![.\-/_][0-9])"
)
_NON_DIGIT_RE = re.compile(r"[^0-9]")


def national_numbers(text: str) -> Iterator[Finding]:
    """National register numbers and BIS numbers whose check digits are right."""
    for match in _NN_RE.finditer(text):
        digits = _NON_DIGIT_RE.sub("", match.group())
        if stdnum_nn.is_valid(digits):
            yield Finding.NATIONAL_NUMBER
        elif stdnum_bis.is_valid(digits):
            yield Finding.BIS_NUMBER


# ------------------------------------------------------------------------------------- IBAN

# Groups may be separated by spaces, dashes or dots, including one between the country code
# and the check digits ("BE 68 5390 ...").
_IBAN_RE = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z]{2}[ .\-]?[0-9]{2}(?:[ .\-]?[A-Za-z0-9]){11,30}"
)
_IBAN_SEP_RE = re.compile(r"[ .\-]")
_IBAN_DB = numdb.get("iban")
_BBAN_PART_RE = re.compile(r"([0-9]+)!")


@lru_cache(maxsize=1024)
def _iban_length(country: str) -> int:
    """Length of the IBANs of a country (from stdnum's IBAN registry), 0 if it has none."""
    info = _IBAN_DB.info(country)
    bban = info[0][1].get("bban", "") if info else ""
    return 4 + sum(int(n) for n in _BBAN_PART_RE.findall(bban)) if bban else 0


def _iban_span(candidate: str) -> int:
    """Length of the valid IBAN that candidate starts with (separators included), or 0.

    Valid means the structure of its country and mod-97 check digits. The country modules of
    stdnum are not consulted: they also look the bank code up in a bundled registry, which
    would let a real but unlisted account through.
    """
    compact = _IBAN_SEP_RE.sub("", candidate).upper()
    # The candidate may run on into the next word: cut it at its country's IBAN length.
    length = _iban_length(compact[:2])
    if not length or len(compact) < length:
        return 0
    if not stdnum_iban.is_valid(compact[:length], check_country=False):
        return 0
    seen = 0
    for index, char in enumerate(candidate):
        seen += char.isalnum()
        if seen == length:
            return index + 1
    return 0  # pragma: no cover - the candidate has at least length characters


def ibans(text: str) -> Iterator[Finding]:
    """IBANs of any country with valid structure and check digits."""
    if any(_iban_span(match.group()) for match in _IBAN_RE.finditer(text)):
        yield Finding.IBAN


def blank_ibans(text: str) -> str:
    """The text with every valid IBAN replaced by spaces (its digits are no phone number)."""

    def blank(match: re.Match[str]) -> str:
        span = _iban_span(match.group())
        return " " * span + match.group()[span:]

    return _IBAN_RE.sub(blank, text)
