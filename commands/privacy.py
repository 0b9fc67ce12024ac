"""The privacy guard (spec §10): free text must not carry personal data of a discussed person.

Cases are known only by their code. Whatever prose the bot keeps (signal summary, agenda
items, the fiche's ``other`` field) first goes through :func:`screen`, which returns the kinds
of personal data it recognises; the caller refuses the text when the result is not empty.

Detection is deliberately conservative on numbers that carry a check (national register and
BIS numbers, IBANs: only check-digit valid ones count, validated by ``python-stdnum``) and on
phone numbers (``phonenumbers``), and pattern-based for the rest: a date only counts as a date
of birth near a birth word, a street name only with a house number, a name only after a title
or an introducing word ("genaamd", "nommé", "called", ...), a Matrix user id is a roster
member and not a social-media handle.

Pure functions: no I/O, no logging, no clock except the current year for plausible birth
years. :func:`screen` never raises: when a detector fails unexpectedly the text is treated as
containing that detector's kind of data (fail closed).
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import lru_cache

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import numdb
from stdnum.be import bis as stdnum_bis
from stdnum.be import nn as stdnum_nn

__all__ = ["Finding", "screen"]


class Finding(enum.StrEnum):
    """A kind of personal data found in free text."""

    NATIONAL_NUMBER = "national_number"  # Belgian rijksregisternummer, check digits verified
    BIS_NUMBER = "bis_number"  # Belgian BIS number, check digits verified
    DATE_OF_BIRTH = "date_of_birth"
    PHONE = "phone"
    EMAIL = "email"
    IBAN = "iban"  # mod-97 valid
    LICENCE_PLATE = "licence_plate"
    STREET_ADDRESS = "street_address"
    SOCIAL_HANDLE = "social_handle"  # @handles, and profile URLs of social networks
    PERSON_NAME = "person_name"


# --------------------------------------------------------------------------- normalisation

_CHAR_REPLACEMENTS = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u02bc": "'",
    "\u00b4": "'",
    "`": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2039": '"',
    "\u203a": '"',
}


@lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    """ASCII-friendly replacement of one non-ASCII character (after NFKC)."""
    replacement = _CHAR_REPLACEMENTS.get(char)
    if replacement is not None:
        return replacement
    category = unicodedata.category(char)
    if category == "Cf":  # zero-width and other invisible format characters
        return ""
    if category == "Pd":  # every kind of dash
        return "-"
    if category == "Zs":
        return " "
    if category in ("Zl", "Zp"):
        return "\n"
    if category in ("Cc", "Cs"):  # controls, lone surrogates
        return " "
    if category == "Nd":  # decimal digits of any script
        return str(unicodedata.decimal(char, 0))
    return char


def _normalise(text: str) -> str:
    # The masculine ordinal "º" is often typed for the birth sign "°"; NFKC would make it "o".
    text = unicodedata.normalize("NFKC", text.replace("\u00ba", "\u00b0"))
    if not text.isascii():
        text = text.translate({ord(c): _fold_char(c) for c in set(text) if ord(c) > 0x7F})
    return text.replace("\r\n", "\n").replace("\t", " ")


# ---------------------------------------------------------- national register / BIS numbers

_SEP = r"[ ]?[.\-/]?[ ]?"
_NN_RE = re.compile(
    rf"(?<![0-9])(?<![0-9][.\-/])"
    rf"[0-9]{{2}}{_SEP}[0-9]{{2}}{_SEP}[0-9]{{2}}{_SEP}[0-9]{{3}}{_SEP}[0-9]{{2}}"
    rf"(?![0-9])(?![.\-/][0-9])"
)
_NON_DIGIT_RE = re.compile(r"[^0-9]")


def _national_numbers(text: str) -> Iterator[Finding]:
    for match in _NN_RE.finditer(text):
        digits = _NON_DIGIT_RE.sub("", match.group())
        if stdnum_nn.is_valid(digits):
            yield Finding.NATIONAL_NUMBER
        elif stdnum_bis.is_valid(digits):
            yield Finding.BIS_NUMBER


# ------------------------------------------------------------------------------------- IBAN

_IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}(?:[ \-]?[A-Za-z0-9]){11,30}")
_IBAN_SEP_RE = re.compile(r"[ \-]")
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


def _ibans(text: str) -> Iterator[Finding]:
    if any(_iban_span(match.group()) for match in _IBAN_RE.finditer(text)):
        yield Finding.IBAN


def _blank_ibans(text: str) -> str:
    def blank(match: re.Match[str]) -> str:
        span = _iban_span(match.group())
        return " " * span + match.group()[span:]

    return _IBAN_RE.sub(blank, text)


# ------------------------------------------------------------------------------------ phone

# Only numbers written with a trunk (0) or international (+, 00) prefix count, see _is_phone.
_PHONE_HINT_RE = re.compile(r"(?:\+|(?<![0-9])\(?0)[ ]?[0-9][0-9 ()./\-]{5,}[0-9]")
_DATE_LIKE_RE = re.compile(
    r"[0-9]{1,4}\s?[./\-]\s?[0-9]{1,2}\s?[./\-]\s?[0-9]{1,4}"
    r"|(?:19|20)[0-9]{2}\s?[\-/]\s?(?:19|20)?[0-9]{2}"
)
_ENTERPRISE_NUMBER_RE = re.compile(r"[01][0-9]{3}\.[0-9]{3}\.[0-9]{3}")  # KBO/BCE 0123.456.789


def _is_phone(raw: str, number: phonenumbers.PhoneNumber) -> bool:
    raw = raw.lstrip("( ").rstrip()
    if _DATE_LIKE_RE.fullmatch(raw):  # 12.03.2026 parses as a Tongeren number
        return False
    if raw.startswith(("+", "00")):  # international: the country code is written
        return phonenumbers.is_possible_number(number)
    if not raw.startswith("0") or number.country_code != 32:  # no trunk prefix: not a phone
        return False
    if phonenumbers.is_valid_number(number):
        return True
    if _ENTERPRISE_NUMBER_RE.fullmatch(raw):
        return False
    # Unallocated but phone-shaped Belgian numbers (02/123.45.67) are written as a phone
    # number: 8 significant digits for a landline, 9 starting with 4 for a mobile.
    national = str(number.national_number)
    return (len(national) == 8 and national[0] != "0") or (
        len(national) == 9 and national[0] == "4"
    )


def _phones(text: str) -> Iterator[Finding]:
    if not _PHONE_HINT_RE.search(text):
        return
    # Digits of a valid IBAN are not a phone number.
    text = _blank_ibans(text)
    matcher = phonenumbers.PhoneNumberMatcher(text, "BE", leniency=phonenumbers.Leniency.POSSIBLE)
    for match in matcher:
        if _is_phone(match.raw_string, match.number):
            yield Finding.PHONE
            return


# ------------------------------------------------------------------------------------ e-mail

_EMAIL_RE = re.compile(
    r"(?<![\w.%+\-])[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,}(?![\w\-])"
    # obfuscated: "naam [at] provider [dot] be", "naam(at)provider.be"
    r"|(?<![\w.%+\-])[\w.%+\-]+\s?[\[({]\s?(?:at|@|apenstaart|arobase)\s?[\])}]\s?[\w\-]+"
    r"(?:\s?[\[({]\s?(?:dot|punt|point)\s?[\])}]\s?[\w\-]+|\.[\w\-]+)+",
    re.IGNORECASE,
)


def _emails(text: str) -> Iterator[Finding]:
    if _EMAIL_RE.search(text):
        yield Finding.EMAIL


# ----------------------------------------------------------------------------- date of birth

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
    # 2010-03-12
    re.compile(
        rf"(?<![0-9])(?P<y>{_YEAR})\s?[\-/.]\s?(?P<m>[01]?[0-9])\s?[\-/.]\s?(?P<d>[0-3]?[0-9])"
        r"(?![0-9])"
    ),
    # 12 maart 2010, 1er mars 2010, 3rd of March 2010, 12 mei (year optional)
    re.compile(
        rf"(?<![0-9])(?P<d>[0-3]?[0-9])(?:ste|ère|er|de|st|nd|rd|th|e)?\.?\s*(?:of\s+)?"
        rf"(?P<mon>{_MONTHS})(?!\w)\.?(?:,?\s*(?P<y>{_YEAR}))?(?![0-9])",
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
_BIRTH_WORDS = (
    r"(?<!\w)(?:geboren|geb\.|geb|geboortedatum|geboortedag|geboorte|verjaardag|jarig"
    r"|né|née|nés|nées|né\s?\(e\)|né\.e|date\s+de\s+naissance|naissance|anniversaire"
    r"|born|birth|birthday|birthdate|date\s+of\s+birth|d\.o\.b\.?|dob)(?!\w)"
    r"|(?<!\w)°"
)
_BIRTH_RE = re.compile(_BIRTH_WORDS, re.IGNORECASE)
_BIRTH_AFTER_RE = re.compile(rf"\s?[(\[,:\-]?\s?(?:{_BIRTH_WORDS})", re.IGNORECASE)
_GAP_BREAK_RE = re.compile(
    r"[0-9!?;\n]|\.\s"
    r"|vergader|overleg|evaluat|afspraak|gesprek|zitting|opvolg|gepland|vanaf|sinds|\btot\b"
    r"|réunion|reunion|rendez|audience|suivi|prévu|prevu|depuis|jusqu|\bdès\b"
    r"|meeting|hearing|deadline|planned|scheduled|since|until|\bfrom\b",
    re.IGNORECASE,
)
_MAX_GAP = 30


def _plausible_date(match: re.Match[str]) -> bool:
    groups = match.groupdict()
    day, month, year = groups.get("d"), groups.get("m"), groups.get("y")
    if day is not None and not 1 <= int(day) <= 31:
        return False
    if month is not None and not 1 <= int(month) <= 12:
        return False
    if year is not None and len(year) == 4:
        return 1900 <= int(year) <= datetime.now(UTC).year
    return True


def _near_birth_word(text: str, start: int, end: int) -> bool:
    window = text[max(0, start - _MAX_GAP - 30) : start]
    triggers = list(_BIRTH_RE.finditer(window))
    if triggers:
        gap = window[triggers[-1].end() :]
        if len(gap) <= _MAX_GAP and not _GAP_BREAK_RE.search(gap):
            return True
    return _BIRTH_AFTER_RE.match(text, end, end + 30) is not None


def _dates_of_birth(text: str) -> Iterator[Finding]:
    if not _BIRTH_RE.search(text):
        return
    for pattern in _DATE_RES:
        for match in pattern.finditer(text):
            if _plausible_date(match) and _near_birth_word(text, match.start(), match.end()):
                yield Finding.DATE_OF_BIRTH
                return


# --------------------------------------------------------------------------- licence plates

# Current format (2010-): 1-ABC-123; older: ABC-123 and 123-ABC.
_PLATE_NEW_RE = re.compile(
    r"(?<![\w\-])[1-9](?P<s1>[ \-.]?)(?P<l>[A-Za-z]{3})(?P<s2>[ \-.]?)[0-9]{3}(?![\w\-])"
)
_PLATE_OLD_DASH_RE = re.compile(r"(?<![\w\-])(?P<l>[A-Z]{3})-[0-9]{3}(?![\w\-])")
_PLATE_OLD_LOOSE_RE = re.compile(
    r"(?<![\w\-])(?:[A-Z]{3}[ .]?[0-9]{3}|[0-9]{3}[ \-.]?[A-Z]{3})(?![\w\-])"
)
_PLATE_WORD_RE = re.compile(
    r"(?<!\w)(?:\w*plaat|kenteken\w*|immatricul\w*|plaques?|licen[cs]e|registration|plates?"
    r"|voertuig(?:en)?|\w*wagens?|auto's|autos?|véhicules?|vehicules?|voitures?|vehicles?|cars?"
    r"|camionnettes?|moto's|motos?|scooters?|bromfiets\w*)(?!\w)",
    re.IGNORECASE,
)
_NOT_PLATE_LETTERS = frozenset(
    {"CLB", "CAW", "AMO", "SAJ", "SPJ", "OCM", "DVP", "CGG", "JAC", "IJH", "BJB", "KBO", "ART"}
)


def _licence_plates(text: str) -> Iterator[Finding]:
    for match in _PLATE_NEW_RE.finditer(text):
        dashed = match.group("s1") == "-" and match.group("s2") == "-"
        if dashed or match.group("l").isupper():
            yield Finding.LICENCE_PLATE
            return
    for match in _PLATE_OLD_DASH_RE.finditer(text):
        if match.group("l") not in _NOT_PLATE_LETTERS:
            yield Finding.LICENCE_PLATE
            return
    for match in _PLATE_OLD_LOOSE_RE.finditer(text):
        context = text[max(0, match.start() - 40) : match.end() + 40]
        if _PLATE_WORD_RE.search(context):
            yield Finding.LICENCE_PLATE
            return


# ------------------------------------------------------------------------- street addresses

_WORD = r"[^\W\d_][\w'\-]*"
_HOUSE_NUMBER = r"(?:(?:nr|no|n°|num[ée]ro|nummer)\.?\s?)?(?P<num>[1-9][0-9]{0,3})(?![0-9])"
_NOT_AFTER_NUMBER = r"(?![.,:/h][0-9]|u[0-9]|\s?(?:%|uur|u\b|h\b|min|jaar|ans?\b|years?\b))"

# Dutch: "Kerkstraat 12", "Grote Markt 1", "Brusselsesteenweg 12 bus 3", "Kerkstr. 12".
_NL_STREET_RE = re.compile(
    rf"(?<![\w\-'])(?:(?P<prev>{_WORD})[ ]+)?(?P<word>{_WORD})(?P<dot>\.)?[ ]?,?[ ]?"
    rf"{_HOUSE_NUMBER}{_NOT_AFTER_NUMBER}",
    re.IGNORECASE,
)
# "Steenweg op Gent 12", "Baan naar Mons 3"
_NL_STREET_OP_RE = re.compile(
    rf"(?<!\w)(?:\w*steenweg|\w*baan|\w*weg)\s+(?:op|naar)\s+(?-i:[A-Z])[\w\-']*\s?,?\s?"
    rf"{_HOUSE_NUMBER}{_NOT_AFTER_NUMBER}",
    re.IGNORECASE,
)
# Suffixes that make a street in any case ("kerkstraat 12") ...
_NL_STRONG = ("straat", "straatje", "laan", "lei", "steenweg", "dreef", "kaai", "singel")
# ... and suffixes that do only in a capitalised word ("Vrijdagmarkt 3", "Grote Markt 1").
_NL_WEAK = ("weg", "markt", "baan", "plein", "pleintje", "dijk", "vest", "gracht", "steeg")
_NL_ABBREVIATIONS = ("str", "stwg", "stw")  # Kerkstr. 12, Brusselsestwg. 3
_NL_NOT_STREETS = frozenset(
    {
        "onderweg", "halfweg", "halverweg", "omweg", "uitweg", "terugweg", "heenweg", "snelweg",
        "loopbaan", "arbeidsmarkt", "woningmarkt", "huurmarkt", "drugsmarkt", "jobmarkt",
        "zwartemarkt", "speelplein", "schoolplein", "opsteeg", "invest",
    }
)  # fmt: skip

_FR_TYPES_STRONG = r"rue|avenue|av\.?|boulevard|bd\.?|bld\.?|blvd\.?|chaussée|chaussee|chée"
_FR_TYPES_WEAK = (
    r"place|pl\.|chemin|ch\.|quai|allée|allee|impasse|square|drève|dreve|clos|sentier"
    r"|rempart|route|voie|cité|cite|parvis|esplanade|promenade|venelle|ruelle|rond-point"
)
_FR_NAME = rf"(?P<name>(?:{_WORD}\.?\s+){{0,5}}?{_WORD}\.?)"
# "Rue de la Loi 16", "Avenue Louise 54 bte 3", "Bd Anspach 10"
_FR_STREET_RE = re.compile(
    rf"(?<![\w\-])(?P<type>{_FR_TYPES_STRONG}|{_FR_TYPES_WEAK})\s+{_FR_NAME}\s?,?\s?"
    rf"{_HOUSE_NUMBER}{_NOT_AFTER_NUMBER}",
    re.IGNORECASE,
)
# "16, rue de la Loi"
_FR_STREET_REVERSED_RE = re.compile(
    rf"(?<![\w.,/:\-])[1-9][0-9]{{0,3}}(?:\s?(?:bis|ter|[a-z]))?,?\s+"
    rf"(?P<type>{_FR_TYPES_STRONG}|{_FR_TYPES_WEAK})\s+"
    r"(?P<name>(?:(?:de|du|des|la|le|les|aux|au|à|l'|d')\s*){0,3}[^\W\d_][\w'\-]*)",
    re.IGNORECASE,
)
_FR_STRONG_RE = re.compile(rf"(?:{_FR_TYPES_STRONG})", re.IGNORECASE)
_FR_PARTICLES = frozenset(
    {"de", "du", "des", "la", "le", "les", "l'", "d'", "aux", "au", "à", "saint", "sainte",
     "st", "ste", "van", "der", "den"}
)  # fmt: skip
_FR_STOP = frozenset(
    {
        "avec", "pour", "et", "ou", "en", "dans", "sur", "sous", "chez", "depuis", "pendant",
        "après", "avant", "entre", "par", "vers", "sans", "contre", "il", "elle", "on", "ils",
        "elles", "nous", "vous", "qui", "que", "quand", "où", "est", "sont", "était", "a", "ont",
        "fois", "mois", "ans", "jours", "semaines", "jeunes", "personnes", "principale",
        "the", "with", "for", "and", "or", "in", "at", "to",
    }
)  # fmt: skip
# "12 Baker Street"
_EN_STREET_RE = re.compile(
    r"(?<![\w.,/:\-])[1-9][0-9]{0,3}[a-zA-Z]?,?\s+(?:[A-Z][\w'\-]*\s+){1,3}"
    r"(?:Street|St\.|Road|Rd\.|Avenue|Ave\.|Lane|Drive|Boulevard|Crescent|Terrace)(?!\w)"
)


def _nl_street(prev: str | None, word: str, dot: bool, number: str) -> bool:
    if len(number) == 4 and number[:2] in ("19", "20"):  # a year, not a house number
        return False
    lower = word.lower()
    if dot:
        return any(
            lower.endswith(abbreviation) and len(lower) >= len(abbreviation) + 2
            for abbreviation in _NL_ABBREVIATIONS
        )
    if lower in _NL_NOT_STREETS:
        return False
    capital = word[0].isupper()
    for suffix in _NL_STRONG:
        if lower.endswith(suffix) and len(lower) >= len(suffix) + 2:
            return True
    for suffix in (*_NL_STRONG, *_NL_WEAK):
        if not capital or not lower.endswith(suffix):
            continue
        if len(lower) >= len(suffix) + 2:  # compound: Vrijdagmarkt, Zeedijk
            return True
        if lower == suffix and prev is not None and prev[0].isupper():  # Grote Markt
            return True
    return False


def _fr_street(street_type: str, name: str) -> bool:
    tokens = name.split()
    if any(token.lower() in _FR_STOP for token in tokens):
        return False
    if any(c.isupper() for c in name):
        return True
    meaningful = [t for t in tokens if t.lower() not in _FR_PARTICLES]
    return bool(_FR_STRONG_RE.fullmatch(street_type)) and len(meaningful) == 1


def _street_addresses(text: str) -> Iterator[Finding]:
    for match in _NL_STREET_RE.finditer(text):
        if _nl_street(
            match.group("prev"), match.group("word"), bool(match.group("dot")), match["num"]
        ):
            yield Finding.STREET_ADDRESS
            return
    if _NL_STREET_OP_RE.search(text) or _EN_STREET_RE.search(text):
        yield Finding.STREET_ADDRESS
        return
    for pattern in (_FR_STREET_RE, _FR_STREET_REVERSED_RE):
        for match in pattern.finditer(text):
            if _fr_street(match.group("type"), match.group("name")):
                yield Finding.STREET_ADDRESS
                return


# ------------------------------------------------------------------- social-media handles

_HANDLE_RE = re.compile(r"(?<![\w.%+\-@/])@(?P<handle>[\w.=/+\-]+)")
_HANDLE_SHAPE_RE = re.compile(r"[^\W\d][\w.\-]{1,29}")
_NOT_HANDLES = frozenset({"room", "here", "all", "everyone", "channel"})
_SOCIAL_DOMAINS = (
    r"facebook\.com|fb\.com|fb\.me|m\.me|messenger\.com|instagram\.com|instagr\.am"
    r"|tiktok\.com|x\.com|twitter\.com|t\.me|telegram\.me|telegram\.dog|telegram\.org"
    r"|youtube\.com|youtu\.be|snapchat\.com|linkedin\.com|threads\.net|threads\.com|wa\.me"
    r"|pinterest\.com|reddit\.com|tumblr\.com|twitch\.tv|vk\.com|onlyfans\.com|bsky\.app"
    r"|discord\.com/users|mastodon\.social|kik\.me"
)
_SOCIAL_URL_RE = re.compile(
    rf"(?<![\w.\-])(?:https?://)?(?:[a-z0-9\-]+\.)*?(?:{_SOCIAL_DOMAINS})/+[^\s/?#]",
    re.IGNORECASE,
)
# "insta: naam_2009", "snapchat = youssef.b", "TikTok-account: @naam"
_SOCIAL_LABEL_RE = re.compile(
    r"(?<!\w)(?:insta(?:gram)?|snap(?:chat)?|tik\s?tok|facebook|telegram|twitter|threads"
    r"|discord|whatsapp|signal|kik)[\s\-]*(?:account|naam|name|handle|profiel|profil|profile"
    r"|pseudo|id|username|gebruikersnaam|nom d'utilisateur)?\s*[:=]\s*(?P<at>@?)"
    r"(?P<handle>[\w.]{3,30})",
    re.IGNORECASE,
)


def _social_handles(text: str) -> Iterator[Finding]:
    for match in _HANDLE_RE.finditer(text):
        end = match.end()
        if (
            end + 1 < len(text)
            and text[end] == ":"
            and (text[end + 1].isalnum() or text[end + 1] == "[")
        ):
            continue  # a Matrix user id @local:server — a roster member
        handle = match.group("handle").rstrip("./-+=")
        if _HANDLE_SHAPE_RE.fullmatch(handle) and handle.lower() not in _NOT_HANDLES:
            yield Finding.SOCIAL_HANDLE
            return
    if _SOCIAL_URL_RE.search(text):
        yield Finding.SOCIAL_HANDLE
        return
    for match in _SOCIAL_LABEL_RE.finditer(text):
        handle = match.group("handle")
        if any(c.isalpha() for c in handle) and (
            match.group("at") or any(c.isdigit() or c in "_." for c in handle)
        ):
            yield Finding.SOCIAL_HANDLE
            return


# ----------------------------------------------------------------------------- person names

_PARTICLES = (
    r"van|von|vanden|vander|de|der|den|del|della|di|da|du|des|le|la|ten|ter|te|el|al|ben|bin"
    r"|ibn|mac|op|het|'t|d'|l'"
)
_NAME = rf"(?:(?i:{_PARTICLES})\s+){{0,3}}(?P<name>[^\W\d_][\w'\-]*)"
_TITLE_RE = re.compile(
    r"(?<![\w.])(?:"
    # case-insensitive titles
    r"(?i:meneer|mijnheer|menheer|mevrouw|mevr|mvr|mw(?=\.)|dhr|de\s+heer|juffrouw|juf"
    r"|dokter|monsieur|madame|mademoiselle|mme|mlle|melle|docteur|dr|mister|mrs|mr)"
    # case-sensitive ones, ambiguous in lower case
    r"|M(?=\.)|Ms|Miss"
    rf")(?:\.\s*|\s+){_NAME}"
)
_INTRODUCER_RE = re.compile(
    r"(?<!\w)(?:"
    r"(?i:genaamd|genoemd|geheten|bijgenaamd|heet|heten|met\s+(?:de|als)\s+naam"
    r"|roepnaam|bijnaam|alias|a\.?k\.?a\.?|nommée?|surnommée?|appelée?|prénommée?|s'appell?e"
    r"|called|named|nicknamed|known\s+as|(?:zijn|haar|son|his|her)\s+(?:naam|nom|name)\s+"
    r"(?:is|est)"
    r"|(?:(?:voor|achter|familie|roep)?naam|(?:pré)?nom|nom\s+de\s+famille|(?:first|last|sur)?"
    r"\s?name)\s*[:=]"
    r"|(?:jeune|garçon|gamin|gamine|fille|homme|femme|individu|mineure?|personne|frère|sœur"
    r"|soeur|cousine?|amie?|copain|copine)\s+dite?)"
    rf")[\s:\"']*{_NAME}"
)
# Functions and forms of address that follow a title without being a name
# ("Mevrouw de Burgemeester", "Monsieur le Procureur du Roi", "Madame la Présidente").
_ROLE_STEMS = (
    "burgemeester",
    "voorzit",
    "schepen",
    "procureu",
    "secretar",
    "directeu",
    "directri",
    "directo",
    "commissa",
    "inspect",
    "agent",
    "rechter",
    "minist",
    "gouvern",
    "korpschef",
    "bourgmest",
    "présid",
    "presid",
    "échevin",
    "echevin",
    "substitu",
    "prosecut",
    "officer",
    "secretary",
    "secrétaire",
    "alderman",
    "coordin",
    "coördin",
    "conseill",
    "raadslid",
    "raadsheer",
    "ambassad",
    "rector",
    "decaan",
    "koning",
    "bestuurder",
    "madame",
    "monsieur",
    "mevrouw",
    "meneer",
    "mijnheer",
    "mademoiselle",
    "messieurs",
    "mesdames",
    "docteur",
    "dokter",
    "doctor",
    "professor",
    "professeur",
    "verantwoordelijke",
    "responsable",
    "manager",
    "leerkracht",
    "teacher",
    "hoofdinspect",
    "hoofdcommiss",
    "afgevaardigde",
)
_ROLE_WORDS = frozenset(
    {
        "chair", "chairman", "chairwoman", "chairperson", "mayor", "judge", "juge", "rechter",
        "chief", "chef", "king", "queen", "roi", "reine", "prince", "princesse", "prinses",
        "dame", "heer", "sir", "mr", "mrs", "ms", "miss", "doyen", "premier", "consul",
        "hoofd", "president", "président", "présidente", "voorzitter", "voorzitster",
    }
)  # fmt: skip
_CALENDAR_WORDS = frozenset(
    {
        "maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag",
        "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche", "monday",
        "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "januari",
        "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
        "november", "december", "janvier", "février", "mars", "avril", "mai", "juin", "juillet",
        "août", "septembre", "octobre", "novembre", "décembre", "january", "february",
        "march", "may", "june", "july", "august", "october", "police", "politie", "school",
        "team", "project", "projet", "the", "de", "het", "le", "la", "les", "een", "un", "une",
    }
)  # fmt: skip


def _is_name(name: str, introduced: bool) -> bool:
    if len(name) < 2 or not name[0].isupper():
        return False
    lower = name.lower()
    if lower.startswith(_ROLE_STEMS) or lower in _ROLE_WORDS or lower in _CALENDAR_WORDS:
        return False
    # After "called", "genaamd", ... an acronym is an organisation (CLB, OCMW, CPAS).
    return not (introduced and name.isupper() and len(name) <= 6)


# "het project heet Kompas", "un service nommé Horizon": the thing named is not a person.
_THING_BEFORE_RE = re.compile(
    r"(?<!\w)(?:project|traject|programma|plan|actieplan|initiatief|werking|dienst|team|vzw"
    r"|organisatie|school|groep|zone|wijk|dossier|overleg|netwerk|platform|app|huis|centrum"
    r"|projet|programme|service|équipe|equipe|asbl|association|école|ecole|groupe|quartier"
    r"|réseau|reseau|centre|maison|program|scheme|organisation|organization|network|centre"
    r"|center|group|district|meeting|operation|operatie|opération|campagne|campaign)s?"
    r"(?:\s+\w+)?\s*$",
    re.IGNORECASE,
)


_PERSON_BEFORE_RE = re.compile(
    r"(?<!\w)(?:jongen|meisje|jongere|minderjarige|kind|man|vrouw|broer|zus|vader|moeder|oom"
    r"|tante|neef|nicht|vriend|vriendin|persoon|jeune|garçon|gamin|fille|homme|femme|mineur"
    r"|enfant|frère|soeur|sœur|père|mère|oncle|cousin|ami|copain|copine|personne|boy|girl"
    r"|youth|child|kid|woman|brother|sister|father|mother|uncle|aunt|friend|person"
    r"|minor|teenager|adolescent|adolescente|tiener)s?e?(?!\w)",
    re.IGNORECASE,
)


def _person_names(text: str) -> Iterator[Finding]:
    for pattern, introduced in ((_TITLE_RE, False), (_INTRODUCER_RE, True)):
        for match in pattern.finditer(text):
            if not _is_name(match.group("name"), introduced):
                continue
            before = text[max(0, match.start() - 40) : match.start()]
            if (
                introduced
                and _THING_BEFORE_RE.search(before)
                and not _PERSON_BEFORE_RE.search(before)
            ):
                continue
            yield Finding.PERSON_NAME
            return


# ---------------------------------------------------------------------------------- screen

_DETECTORS: tuple[tuple[Callable[[str], Iterator[Finding]], frozenset[Finding]], ...] = (
    (_national_numbers, frozenset({Finding.NATIONAL_NUMBER, Finding.BIS_NUMBER})),
    (_ibans, frozenset({Finding.IBAN})),
    (_phones, frozenset({Finding.PHONE})),
    (_emails, frozenset({Finding.EMAIL})),
    (_dates_of_birth, frozenset({Finding.DATE_OF_BIRTH})),
    (_licence_plates, frozenset({Finding.LICENCE_PLATE})),
    (_street_addresses, frozenset({Finding.STREET_ADDRESS})),
    (_social_handles, frozenset({Finding.SOCIAL_HANDLE})),
    (_person_names, frozenset({Finding.PERSON_NAME})),
)


def screen(text: str) -> frozenset[Finding]:
    """Kinds of personal data found in text; empty when clean. Never raises, never logs."""
    try:
        text = text if isinstance(text, str) else str(text)
    except Exception:
        return frozenset()
    try:
        normalised = _normalise(text)
    except Exception:  # pragma: no cover - scan the text as given rather than not at all
        normalised = text
    if not normalised.strip():
        return frozenset()
    found: set[Finding] = set()
    for detector, kinds in _DETECTORS:
        try:
            found.update(detector(normalised))
        except Exception:  # a detector bug must not let personal data through
            found.update(kinds)
    return frozenset(found)
