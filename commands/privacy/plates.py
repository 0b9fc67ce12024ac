"""Licence plates: Belgian in every format, and those of France, the Netherlands, Germany and
Luxembourg.

A format that ordinary text rarely has (``1-ABC-123``, ``GH-456-JK``, ``K-AB 1234``, Dutch
side codes such as ``52-LKV-8``) counts anywhere; a looser one (``ABC 123``, ``AB 1234``)
only near a word for a vehicle or a plate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .finding import Finding

__all__ = ["licence_plates"]

_PLATE_WORD_RE = re.compile(
    r"(?<!\w)(?:\w*plaat|kenteken\w*|immatricul\w*|plaques?|licen[cs]e|registration|plates?"
    r"|nummerbord|kennzeichen|voertuig(?:en)?|\w*wagens?|auto's|autos?|véhicules?|vehicules?"
    r"|voitures?|vehicles?|cars?|camionnettes?|moto's|motos?|scooters?|bromfiets\w*|bmw|audi"
    r"|mercedes|opel|renault|peugeot|citro[eë]n|volkswagen|vw|toyota)(?!\w)",
    re.IGNORECASE,
)
# Letter groups that are acronyms of services, not plates (CLB-123 is a file number).
_NOT_PLATE_LETTERS = frozenset(
    {"CLB", "CAW", "AMO", "SAJ", "SPJ", "OCM", "DVP", "CGG", "JAC", "IJH", "BJB", "KBO", "ART",
     "BCE", "BTW", "TVA", "CPAS", "PMS", "VDAB", "DVZ"}
)  # fmt: skip

# Belgium, current format (2010-): 1-ABC-123, also 1ABC123, 1 ABC 123, 1-abc-123.
_BE_NEW_RE = re.compile(
    r"(?<![\w\-])[1-9](?P<s1>[ \-.]?)(?P<l>[A-Za-z]{3})(?P<s2>[ \-.]?)[0-9]{3}(?![\w\-])"
)
# Belgium, older: ABC-123 (anywhere) and ABC 123 / 123-ABC (near a vehicle word).
_BE_OLD_DASH_RE = re.compile(r"(?<![\w\-])(?P<l>[A-Z]{3})-[0-9]{3}(?![\w\-])")
_BE_OLD_LOOSE_RE = re.compile(
    r"(?<![\w\-])(?:[A-Z]{3}[ .]?[0-9]{3}|[0-9]{3}[ \-.]?[A-Z]{3})(?![\w\-])"
)
# France (SIV, 2009-): GH-456-JK, or with spaces near a vehicle word.
_FR_DASH_RE = re.compile(r"(?<![\w\-])[A-Z]{2}-[0-9]{3}-[A-Z]{2}(?![\w\-])")
_FR_LOOSE_RE = re.compile(r"(?<![\w\-])[A-Z]{2} ?[0-9]{3} ?[A-Z]{2}(?![\w\-])")
# The Netherlands: six characters in three groups of letters and digits (the "side codes"
# 99-XX-99, XX-999-X, 9-XXX-99, ...). Both kinds of group must be there.
_NL_RE = re.compile(
    r"(?<![\w\-])(?P<plate>(?:[A-Z]{1,3}|[0-9]{1,3})-(?:[A-Z]{1,3}|[0-9]{1,3})"
    r"-(?:[A-Z]{1,3}|[0-9]{1,3}))(?![\w\-])"
)
# Germany: district (1-3 letters), 1-2 letters, 1-4 digits, optional E/H: K-AB 1234.
_DE_DASH_RE = re.compile(
    r"(?<![\w\-])(?P<d>[A-ZÄÖÜ]{1,3})-[A-Z]{1,2} [1-9][0-9]{0,3}[EH]?(?![\w\-])"
)
_DE_LOOSE_RE = re.compile(
    r"(?<![\w\-])[A-ZÄÖÜ]{1,3} [A-Z]{1,2} [1-9][0-9]{0,3}[EH]?(?![\w\-])"
)
# Luxembourg: AB 1234 (or digits only), near a vehicle word.
_LU_LOOSE_RE = re.compile(r"(?<![\w\-])[A-Z]{2} ?[0-9]{4}(?![\w\-])")


def _nl_side_code(plate: str) -> bool:
    groups = plate.split("-")
    return (
        sum(len(g) for g in groups) == 6
        and any(g.isalpha() for g in groups)
        and any(g.isdigit() for g in groups)
        and not any(g in _NOT_PLATE_LETTERS for g in groups)
    )


def _near_vehicle_word(text: str, match: re.Match[str]) -> bool:
    context = text[max(0, match.start() - 40) : match.end() + 40]
    return _PLATE_WORD_RE.search(context) is not None


def licence_plates(text: str) -> Iterator[Finding]:
    """Licence plates of Belgium and its neighbours."""
    for match in _BE_NEW_RE.finditer(text):
        dashed = match.group("s1") == "-" and match.group("s2") == "-"
        if dashed or match.group("l").isupper():
            yield Finding.LICENCE_PLATE
            return
    for match in _BE_OLD_DASH_RE.finditer(text):
        if match.group("l") not in _NOT_PLATE_LETTERS:
            yield Finding.LICENCE_PLATE
            return
    if _FR_DASH_RE.search(text):
        yield Finding.LICENCE_PLATE
        return
    if any(_nl_side_code(m.group("plate")) for m in _NL_RE.finditer(text)):
        yield Finding.LICENCE_PLATE
        return
    for match in _DE_DASH_RE.finditer(text):
        if match.group("d") not in _NOT_PLATE_LETTERS:
            yield Finding.LICENCE_PLATE
            return
    for pattern in (_BE_OLD_LOOSE_RE, _FR_LOOSE_RE, _DE_LOOSE_RE, _LU_LOOSE_RE):
        for match in pattern.finditer(text):
            if _near_vehicle_word(text, match):
                yield Finding.LICENCE_PLATE
                return
