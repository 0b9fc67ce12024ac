"""Street addresses in Dutch, French and English, in every order people write them.

A street counts only with a house number: a street word ("Kerkstraat", "Beukenhof",
"rue des Tanneurs", "Baker Street") and a number after it or before it ("op nummer 21 in de
Kapelstraat", "14, rue des Bouchers"), with a box in any notation ("7/1", "12/0301",
"bus 3", "bte 4", "b2"). A capitalised name with a number also counts after a word that
says where someone lives ("woont op de Meir 40", "adres: Lindelaan nr. 3"), and with a
number marked as a house number ("op de Meir nr 40"). A number followed by what is counted
("In de Stationsstraat 3 incidenten", "rue Neuve, 15 jeunes") or by a month ("Kerstmarkt
15 december") is a count or a date, not a house number.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .finding import Finding
from .lexicon import COMMON_WORDS

__all__ = ["street_addresses"]

_WORD = r"[^\W\d_][\w'\-]*"
_NUMBER_MARK = r"(?:nr|no|n°|num[ée]ro|nummer|huisnummer)"
_BOX = r"(?:\s?/\s?[0-9]{1,4}|\s?,?\s?(?:bus|bte|boîte|boite|box|b)\.?\s?[0-9]{1,4}[a-z]?)?"
_HOUSE_NUMBER = (
    rf"(?:{_NUMBER_MARK}\.?\s?)?(?P<num>[1-9][0-9]{{0,3}})(?![0-9])"
    rf"(?:\s?(?:bis|ter)\b|[A-Za-z](?![\w]))?{_BOX}"
)
# A number that is a time, a decimal, a percentage or an age is no house number.
_NOT_AFTER_NUMBER = r"(?![.,:h][0-9]|u[0-9]|\s?(?:%|uur|u\b|h\b|min|jaar|ans?\b|years?\b))"

# What is counted after a number: "3 incidenten", "15 jeunes", "20 policiers", "4 keer".
_COUNT_STEMS = (
    "keer", "maal", "jongere", "persone", "mensen", "incident", "feiten", "melding", "klacht",
    "winkel", "woning", "agent", "camera", "caméra", "leerling", "kinderen", "deelnemer",
    "betoger", "arrestat", "proces", "minut", "dagen", "weken", "maanden", "euro", "procent",
    "geval", "dossier", "signa", "interventi", "fois", "jeune", "personne", "policier",
    "plainte", "faits", "commerce", "élève", "eleve", "enfant", "participant", "heure",
    "jours", "semaine", "times", "people", "youth", "young", "officer", "shop", "report",
    "pupil", "children", "arrest", "hour", "days", "week", "month", "cases", "student",
    "studenten", "étudiant", "etudiant", "famil", "gezin", "bewoner", "habitant", "resident",
    "voertuig", "véhicule", "vehicle", "auto", "voiture", "car", "patrouille", "patrol",
    "overlast", "vechtpartij", "bagarre", "fight", "klas", "classe", "class", "uur", "mois",
)  # fmt: skip
_MONTHS = (
    "januari", "janvier", "january", "februari", "février", "fevrier", "february", "maart",
    "mars", "march", "april", "avril", "mei", "mai", "may", "juni", "juin", "june", "juli",
    "juillet", "july", "augustus", "août", "aout", "august", "september", "septembre",
    "oktober", "octobre", "october", "november", "novembre", "december", "décembre",
    "decembre", "jan", "feb", "mrt", "apr", "jun", "jul", "aug", "sep", "sept", "okt", "oct",
    "nov", "dec", "déc",
)  # fmt: skip
_NEXT_WORD_RE = re.compile(r"[\s,]*(?P<word>[^\W\d_][\w'\-]*)")


def _counted_or_dated(text: str, end: int) -> bool:
    """Whether the number that ends at end is followed by what it counts or by a month."""
    match = _NEXT_WORD_RE.match(text, end)
    if match is None:
        return False
    word = match.group("word").casefold().rstrip(".")
    return word in _MONTHS or word.startswith(_COUNT_STEMS)


# ------------------------------------------------------------------------------- Dutch

# "Kerkstraat 12", "Grote Markt 1", "Brusselsesteenweg 12 bus 3", "Kerkstr. 12", "Beekstraat 7/1"
_NL_STREET_RE = re.compile(
    rf"(?<![\w\-'])(?:(?P<prev>{_WORD})[ ]+)?(?!{_NUMBER_MARK}\b|bus\b|bte\b)(?P<word>{_WORD})"
    rf"(?P<dot>\.)?[ ]?,?[ ]?{_HOUSE_NUMBER}{_NOT_AFTER_NUMBER}",
    re.IGNORECASE,
)
# "Steenweg op Gent 12", "Baan naar Mons 3"
_NL_STREET_OP_RE = re.compile(
    rf"(?<!\w)(?:\w*steenweg|\w*baan|\w*weg)\s+(?:op|naar)\s+(?-i:[A-Z])[\w\-']*\s?,?\s?"
    rf"{_HOUSE_NUMBER}{_NOT_AFTER_NUMBER}",
    re.IGNORECASE,
)
# "op nummer 21 in de Kapelstraat", "nr. 5 van de Molenweg"
_NL_NUMBER_FIRST_RE = re.compile(
    rf"(?<!\w){_NUMBER_MARK}\.?\s?[1-9][0-9]{{0,3}}[a-zA-Z]?{_BOX}\s+(?:van|in|op|aan|langs)"
    rf"\s+(?:de|het|den)\s+(?P<prev>{_WORD}\s+)?(?P<word>{_WORD})",
    re.IGNORECASE,
)
# Suffixes that make a street in any case ("kerkstraat 12") ...
_NL_STRONG = ("straat", "straatje", "laan", "lei", "steenweg", "dreef", "kaai", "singel")
# ... and suffixes that do only in a capitalised word ("Vrijdagmarkt 3", "Grote Markt 1").
_NL_WEAK = (
    "weg", "markt", "baan", "plein", "pleintje", "dijk", "vest", "gracht", "steeg", "plaats",
    "hof", "pad", "park", "erf", "hoek", "plantsoen", "wegel", "kade", "dam", "vaart", "poort",
    "ring", "veld", "akker", "dries", "heide", "gaarde", "kouter", "meers",
    "hoeve", "rei", "boulevard", "square", "promenade", "vliet", "dok",
)  # fmt: skip
_NL_ABBREVIATIONS = ("str", "stwg", "stw")  # Kerkstr. 12, Brusselsestwg. 3
_NL_NOT_STREETS = frozenset(
    {
        "onderweg", "halfweg", "halverweg", "omweg", "uitweg", "terugweg", "heenweg", "snelweg",
        "loopbaan", "arbeidsmarkt", "woningmarkt", "huurmarkt", "drugsmarkt", "jobmarkt",
        "zwartemarkt", "speelplein", "schoolplein", "opsteeg", "invest", "werkplaats",
        "woonplaats", "standplaats", "verblijfplaats", "geboorteplaats", "plaats",
        "ontmoetingsplaats",
        "parkeerplaats", "stageplaats", "werkveld", "speelveld", "sportveld", "voetbalveld",
        "jeugdpark", "sportpark", "pretpark", "wagenpark", "hof", "gerechtshof", "binnenhof",
        "hoek", "invalshoek", "uithoek", "oogpunt", "pad", "fietspad", "wandelpad", "dok",
        "leeftijdscategorie", "bouwwerf", "werf", "wijk", "buurt", "akker", "berg", "veld",
        "ring", "vaart", "dam", "poort", "kade", "erf", "heide", "park",
    }
)  # fmt: skip


def _nl_street(prev: str | None, word: str, dot: bool, number: str, any_case: bool) -> bool:
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
    capital = word[0].isupper() or any_case
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


# ------------------------------------------------------------------------------ French

_FR_TYPES_STRONG = r"rue|avenue|av\.?|boulevard|bd\.?|bld\.?|blvd\.?|chaussée|chaussee|chée"
_FR_TYPES_WEAK = (
    r"place|pl\.|chemin|ch\.|quai|allée|allee|impasse|square|drève|dreve|clos|sentier"
    r"|rempart|route|voie|cité|cite|parvis|esplanade|promenade|venelle|ruelle|rond-point"
)
_FR_NAME = rf"(?P<name>(?:{_WORD}\.?\s+){{0,5}}?{_WORD}\.?)"
# "Rue de la Loi 16", "Avenue Louise 54 bte 3", "Bd Anspach 10", "Chée d'Alsemberg 210/4"
_FR_STREET_RE = re.compile(
    rf"(?<![\w\-])(?P<type>{_FR_TYPES_STRONG}|{_FR_TYPES_WEAK})\s+{_FR_NAME}\s?,?\s?"
    rf"{_HOUSE_NUMBER}{_NOT_AFTER_NUMBER}",
    re.IGNORECASE,
)
# "16, rue de la Loi", "14 bis, rue des Bouchers": a particle is a whole word ("des", not
# "de" + "s") or an elision ("d'", "l'").
_FR_PARTICLE = r"(?:(?:de|du|des|la|le|les|aux|au|à)\s+|(?:l|d)'\s*)"
_FR_STREET_REVERSED_RE = re.compile(
    rf"(?<![\w.,/:\-])[1-9][0-9]{{0,3}}(?:\s?(?:bis|ter)\b|[a-z](?!\w))?{_BOX},?\s+"
    rf"(?P<type>{_FR_TYPES_STRONG}|{_FR_TYPES_WEAK})\s+"
    rf"(?P<name>{_FR_PARTICLE}{{0,3}}[^\W\d_][\w'\-]*)",
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
        "the", "with", "for", "and", "or", "in", "at", "to", "compte", "connu", "connaît",
    }
)  # fmt: skip


def _fr_street(street_type: str, name: str) -> bool:
    tokens = name.replace("'", "' ").split()
    if any(token.lower() in _FR_STOP for token in tokens):
        return False
    if any(c.isupper() for c in name):
        return True
    meaningful = [t for t in tokens if t.lower() not in _FR_PARTICLES]
    return bool(_FR_STRONG_RE.fullmatch(street_type)) and len(meaningful) == 1


# ----------------------------------------------------------------------------- English

# "12 Baker Street", "7 Station Road"
_EN_STREET_RE = re.compile(
    r"(?<![\w.,/:\-])[1-9][0-9]{0,3}[a-zA-Z]?,?\s+(?:[A-Z][\w'\-]*\s+){1,3}"
    r"(?:Street|St\.|Road|Rd\.|Avenue|Ave\.|Lane|Drive|Boulevard|Crescent|Terrace|Square"
    r"|Close|Way|Place)(?!\w)"
)

# ------------------------------------------------------------ where someone lives, "nr"

_RESIDENCE_WORDS = (
    r"woont|wonen|woonde|woonachtig|verblijft|verblijven|verblijf|gedomicilieerd|ingeschreven"
    r"|adres|adressen|verhuisd|verhuist|slaapt|kot|domicilié|domiciliée|domicile|domicilie"
    r"|habite|habitent|habitait|vit|vivent|réside|reside|loge|logé|logée|adresse|hébergé"
    r"|hébergée|lives|living|lived|stays|staying|address|moved|resides"
)
# "woont op de Meir 40", "adres: Lindelaan nr. 3", "habite Grand-Place 7"
_RESIDENCE_RE = re.compile(
    rf"(?<!\w)(?i:{_RESIDENCE_WORDS})(?!\w)[^.;!?\n0-9]{{0,40}}?(?<!\w)"
    rf"(?P<name>(?-i:[A-ZÀ-Þ])[\w'\-]*(?:[ \-](?:(?i:de|der|den|van|la|le|du|des|sint|saint)"
    rf"[ \-])?(?-i:[A-ZÀ-Þ])[\w'\-]*){{0,3}})[ ]?,?[ ]?{_HOUSE_NUMBER}{_NOT_AFTER_NUMBER}"
)
# "op de Meir nr 40", "Grand-Place n° 7": a number marked as a house number after a name
_MARKED_NUMBER_RE = re.compile(
    r"(?<![\w\-'])(?P<name>(?-i:[A-ZÀ-Þ])[\w'\-]+)[ ]?,?[ ]?(?i:nr|n°|nummer|huisnummer)\.?"
    r"\s?[1-9][0-9]{0,3}(?![0-9.,:])"
)
_NOT_PLACES = frozenset(
    {
        "agendapunt", "punt", "dossier", "lokaal", "bijlage", "versie", "groep", "klas", "ticket",
        "zaak", "pv", "item", "case", "annexe", "point", "art", "artikel", "article", "fiche",
        "zitting", "vergadering", "week", "lijn", "bus", "tram", "kamer", "room", "salle",
        "school", "leerjaar", "jaar", "les", "cel", "tafel", "table", "meeting", "réunion",
        "nummer", "nr", "rapport", "verslag", "melding", "signaal", "signal", "score", "niveau",
        "fase", "stap", "step", "module", "sessie", "session", "deel", "hoofdstuk", "paragraaf",
    }
)  # fmt: skip


# After a house number found without a street word: what may follow it. A lower-case word
# other than these ("woont in Gent 2 straten verder", "habite Namur, 3 frères") means the
# number counts something and the name is a town.
_AFTER_HOUSE_NUMBER = frozenset(
    {
        "bij", "met", "te", "in", "en", "sinds", "samen", "boven", "op", "van", "bus", "bte",
        "boîte", "boite", "box", "verdieping", "chez", "avec", "à", "a", "et", "depuis", "au",
        "du", "de", "étage", "etage", "with", "since", "and", "at", "floor", "flat", "above",
    }
)  # fmt: skip


def _ends_address(text: str, end: int) -> bool:
    match = _NEXT_WORD_RE.match(text, end)
    if match is None or text[end:match.start("word")].strip(" ,") != "":
        return True  # end of text, or punctuation before any word
    word = match.group("word")
    return not word[0].islower() or word.casefold() in _AFTER_HOUSE_NUMBER


def _residence_name(name: str) -> bool:
    last = name.split()[-1].casefold()
    return last not in _NOT_PLACES and last not in COMMON_WORDS


def street_addresses(text: str) -> Iterator[Finding]:
    """Street addresses with a house number."""
    if _addresses(text):
        yield Finding.STREET_ADDRESS


def _addresses(text: str) -> bool:
    for match in _NL_STREET_RE.finditer(text):
        if _nl_street(
            match.group("prev"), match.group("word"), bool(match.group("dot")), match["num"],
            any_case=False,
        ) and not _counted_or_dated(text, match.end()):
            return True
    for match in _NL_NUMBER_FIRST_RE.finditer(text):
        word = match.group("word")
        if _nl_street(match.group("prev"), word, False, "1", any_case=True) or (
            word[0].isupper() and _residence_name(word)  # "nummer 4 aan de Vaart"
        ):
            return True
    for pattern in (_NL_STREET_OP_RE, _EN_STREET_RE):
        for match in pattern.finditer(text):
            if not _counted_or_dated(text, match.end()):
                return True
    for match in _FR_STREET_RE.finditer(text):
        if _fr_street(match.group("type"), match.group("name")) and not _counted_or_dated(
            text, match.end()
        ):
            return True
    for match in _FR_STREET_REVERSED_RE.finditer(text):
        if _fr_street(match.group("type"), match.group("name")):
            return True
    for match in _RESIDENCE_RE.finditer(text):
        if _residence_name(match.group("name")) and _ends_address(text, match.end()):
            return True
    return any(
        _residence_name(match.group("name")) and not _counted_or_dated(text, match.end())
        for match in _MARKED_NUMBER_RE.finditer(text)
    )
