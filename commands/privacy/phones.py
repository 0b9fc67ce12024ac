"""Phone numbers and e-mail addresses, the obfuscated "naam punt x at provider dot be" too."""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers
from stdnum.be import vat as stdnum_be_vat

from .finding import Finding
from .ids import blank_ibans

__all__ = ["emails", "phones"]

# ------------------------------------------------------------------------------------ phone

# Only numbers written with a trunk (0) or international (+, 00) prefix count, see _is_phone.
_PHONE_HINT_RE = re.compile(r"(?:\+|(?<![0-9])\(?0)[ ]?[0-9][0-9 ()./\-]{5,}[0-9]")
_DATE_LIKE_RE = re.compile(
    r"[0-9]{1,4}\s?[./\-]\s?[0-9]{1,2}\s?[./\-]\s?[0-9]{1,4}"
    r"|(?:19|20)[0-9]{2}\s?[\-/]\s?(?:19|20)?[0-9]{2}"
)
# A Belgian enterprise number (KBO/BCE, also the VAT number) is ten digits starting with 0 or
# 1, so 0456.789.123 has the shape of a mobile number. It is one when it is labelled as such,
# or written the way enterprise numbers are (4.3.3 with dots) with its mod-97 check right.
_ENTERPRISE_DOTTED_RE = re.compile(r"[01][0-9]{3}\.[0-9]{3}\.[0-9]{3}")
_ENTERPRISE_LABEL_RE = re.compile(
    r"(?<!\w)(?:kbo|bce|btw|tva|vat|ondernemings\w*|entreprise|enterprise|company|firma"
    r"|vennootschap|société|societe)\b[^0-9\n]{0,25}$",
    re.IGNORECASE,
)
_DIGITS_RE = re.compile(r"[0-9]")


def _is_enterprise_number(raw: str, before: str) -> bool:
    digits = "".join(_DIGITS_RE.findall(raw))
    if len(digits) != 10 or digits[0] not in "01":
        return False
    if _ENTERPRISE_LABEL_RE.search(before):
        return True
    return bool(_ENTERPRISE_DOTTED_RE.fullmatch(raw)) and stdnum_be_vat.is_valid(digits)


def _is_phone(raw: str, number: phonenumbers.PhoneNumber, before: str) -> bool:
    raw = raw.lstrip("( ").rstrip()
    if _DATE_LIKE_RE.fullmatch(raw):  # 12.03.2026 parses as a Tongeren number
        return False
    if raw.startswith(("+", "00")):  # international: the country code is written
        return phonenumbers.is_possible_number(number)
    if not raw.startswith("0") or number.country_code != 32:  # no trunk prefix: not a phone
        return False
    if _is_enterprise_number(raw, before):
        return False
    if phonenumbers.is_valid_number(number):
        return True
    # Unallocated but phone-shaped Belgian numbers (02/123.45.67) are written as a phone
    # number: 8 significant digits for a landline, 9 starting with 4 for a mobile.
    national = str(number.national_number)
    return (len(national) == 8 and national[0] != "0") or (
        len(national) == 9 and national[0] == "4"
    )


def phones(text: str) -> Iterator[Finding]:
    """Phone numbers written with a trunk or international prefix, any country."""
    if not _PHONE_HINT_RE.search(text):
        return
    # Digits of a valid IBAN are not a phone number.
    text = blank_ibans(text)
    matcher = phonenumbers.PhoneNumberMatcher(text, "BE", leniency=phonenumbers.Leniency.POSSIBLE)
    for match in matcher:
        before = text[max(0, match.start - 40) : match.start]
        if _is_phone(match.raw_string, match.number, before):
            yield Finding.PHONE
            return


# ------------------------------------------------------------------------------------ e-mail

_EMAIL_RE = re.compile(
    r"(?<![\w.%+\-])[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,}(?![\w\-])",
    re.IGNORECASE,
)
# Obfuscated: the "@" and the dots spelled out or bracketed, in any of the three languages:
# "naam [at] telenet [dot] be", "an punt peeters at gmail punt com", "x(at)skynet.be",
# "yanis point dumont arobase gmail point com". A spelled-out address must end in a known
# top-level domain, so that "at" and "point" in ordinary prose are left alone.
_AT = r"(?:\s*[\[({]\s*(?:at|@|apenstaart|arobase)\s*[\])}]\s*|\s+(?:at|apenstaart|arobase)\s+)"
_DOT = r"(?:\.|\s*[\[({]\s*(?:dot|punt|point)\s*[\])}]\s*|\s+(?:dot|punt|point)\s+)"
_TLD = (
    r"(?:be|com|net|org|eu|fr|nl|lu|de|uk|info|biz|me|io|ma|tr|es|it|pl|ro|ch|at|edu|gov"
    r"|brussels|vlaanderen|gent|live|online)"
)
_LABEL = r"[\w%+\-]+"
_OBFUSCATED_EMAIL_RE = re.compile(
    rf"(?<![\w.%+\-]){_LABEL}(?:{_DOT}{_LABEL})*{_AT}{_LABEL}(?:{_DOT}{_LABEL})*?{_DOT}{_TLD}"
    r"(?![\w\-])",
    re.IGNORECASE,
)
_AT_WORD_RE = re.compile(r"(?<!\w)(?:at|apenstaart|arobase)(?!\w)", re.IGNORECASE)


def emails(text: str) -> Iterator[Finding]:
    """E-mail addresses, plain or obfuscated."""
    if _EMAIL_RE.search(text) or (
        _AT_WORD_RE.search(text) and _OBFUSCATED_EMAIL_RE.search(text)
    ):
        yield Finding.EMAIL
