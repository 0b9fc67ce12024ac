"""The privacy guard (spec §10): free text must not carry personal data of a discussed person.

Cases are known only by their code. Whatever prose the bot keeps (signal summary, agenda
items, the fiche's ``other`` field) first goes through :func:`screen`, which returns the kinds
of personal data it recognises; the caller refuses the text when the result is not empty.

One module per family of detectors: :mod:`.ids` (national register, BIS, IBAN: check digits
verified with ``python-stdnum``), :mod:`.phones` (phone numbers with ``phonenumbers``,
e-mail addresses, obfuscated too), :mod:`.dates` (dates of birth), :mod:`.plates` (licence
plates of Belgium and its neighbours), :mod:`.addresses` (street addresses), :mod:`.handles`
(social-media handles and profile links), :mod:`.names` (personal names, with the name
lexicon of :mod:`.lexicon`). :mod:`.normalise` folds look-alike characters first.

Pure functions: no I/O once imported (the lexicon is read at import), no logging, no clock
except the current year for plausible birth years. :func:`screen` never raises: when a
detector fails unexpectedly the text is treated as containing that detector's kind of data
(fail closed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from .addresses import street_addresses
from .dates import dates_of_birth
from .finding import Finding
from .handles import social_handles
from .ids import ibans, national_numbers
from .names import person_names
from .normalise import normalise
from .phones import emails, phones
from .plates import licence_plates

__all__ = ["Finding", "screen"]

_DETECTORS: tuple[tuple[Callable[[str], Iterator[Finding]], frozenset[Finding]], ...] = (
    (national_numbers, frozenset({Finding.NATIONAL_NUMBER, Finding.BIS_NUMBER})),
    (ibans, frozenset({Finding.IBAN})),
    (phones, frozenset({Finding.PHONE})),
    (emails, frozenset({Finding.EMAIL})),
    (dates_of_birth, frozenset({Finding.DATE_OF_BIRTH})),
    (licence_plates, frozenset({Finding.LICENCE_PLATE})),
    (street_addresses, frozenset({Finding.STREET_ADDRESS})),
    (social_handles, frozenset({Finding.SOCIAL_HANDLE})),
    (person_names, frozenset({Finding.PERSON_NAME})),
)


#: A case code (``C-`` and five Crockford characters) is the one name a dossier may have: it is
#: read as the word "dossier", so "C-3NR5Q" is never taken for "nr 5", a house number.
_CASE_CODE = re.compile(r"(?<![\w-])C-[0-9A-Z]{5}(?![\w-])", re.IGNORECASE)


def screen(text: str) -> frozenset[Finding]:
    """Kinds of personal data found in text; empty when clean. Never raises, never logs."""
    try:
        text = text if isinstance(text, str) else str(text)
    except Exception:
        return frozenset()
    try:
        normalised = normalise(text)
    except Exception:  # pragma: no cover - scan the text as given rather than not at all
        normalised = text
    normalised = _CASE_CODE.sub("dossier", normalised)
    if not normalised.strip():
        return frozenset()
    found: set[Finding] = set()
    for detector, kinds in _DETECTORS:
        try:
            found.update(detector(normalised))
        except Exception:  # a detector bug must not let personal data through
            found.update(kinds)
    return frozenset(found)
