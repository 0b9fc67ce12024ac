"""Personal names: after a title, an introducing word or a family relation, and full names on
their own when the name lexicon knows them.

- A title or form of address ("mevrouw", "dhr.", "Mme", "Mr") followed by a name, in any
  capitalisation ("mevr. demir"), unless what follows is a function ("Mijnheer de Pastoor",
  "Madame la Psychologue") or a school subject after a teacher ("de juf Nederlands").
- An introducing word ("genaamd", "nommé", "alias", "dite", "known as") followed by a name;
  not when the thing named is a movement, project or service ("de beweging genaamd X"), and
  "called"/"a appelé" only as naming, not as phoning ("the school called the police").
- A family relation or friend ("zoon van", "fils de", "son of", "zijn vriendin", "son frère",
  "de familie X", "the X family") followed by a capitalised name.
- A first name from the lexicon followed by a capitalised surname from the lexicon
  ("Lotte Claes"), or by any capitalised word and an age ("Ilias Bouzid (16)").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .finding import Finding
from .lexicon import COMMON_WORDS, FIRST_NAMES, SURNAMES, fold
from .vocabulary import NOT_NAMES, ROLE_STEMS, ROLE_WORDS, SCHOOL_SUBJECTS

__all__ = ["person_names"]

_PARTICLES = (
    r"van|von|vanden|vander|de|der|den|del|della|di|da|du|des|le|la|ten|ter|te|el|al|ben|bin"
    r"|ibn|mac|op|het|'t|d'|l'|dos|das|abu|ait|aït"
)
_PARTICLE_SET = frozenset(_PARTICLES.replace("'", "").split("|")) | {"d'", "l'", "'t"}
_NAME_WORD = r"[^\W\d_][\w'\-]*"
# Up to three particles ("van den", "el", "d'") before the name itself.
_NAME = (
    rf"(?P<particles>(?:(?i:{_PARTICLES})\s*(?<=['])|(?i:{_PARTICLES})\s+){{0,3}})"
    rf"(?P<name>{_NAME_WORD})"
)
_TITLE_RE = re.compile(
    r"(?<![\w.])(?P<title>"
    # case-insensitive titles
    r"(?i:meneer|mijnheer|menheer|mevrouw|mevr|mvr|mw(?=\.)|dhr|de\s+heer|juffrouw|juf"
    r"|meester|dokter|monsieur|madame|mademoiselle|mme|mlle|melle|docteur|dr|mister|mrs|mr"
    r"|madam|sir)"
    # case-sensitive ones, ambiguous in lower case
    r"|M(?=\.)|Ms|Miss"
    rf")(?:\.\s*|\s+){_NAME}"
)
_INTRODUCER_RE = re.compile(
    r"(?P<intro>(?<!\w)"
    r"(?i:genaamd|genoemd|geheten|bijgenaamd|heet|heten|met\s+(?:de|als)\s+naam"
    r"|roepnaam|bijnaam|alias|a\.?k\.?a\.?|nommée?|surnommée?|appelée?|prénommée?|s'appell?e"
    r"|called|named|nicknamed|known\s+as|(?:zijn|haar|son|his|her)\s+(?:naam|nom|name)\s+"
    r"(?:is|est)"
    r"|(?:(?:voor|achter|familie|roep)?naam|(?:pré)?nom|nom\s+de\s+famille|(?:first|last|sur)?"
    r"\s?name)\s*[:=]"
    r"|(?:jeune|garçon|gamin|gamine|fille|homme|femme|individu|mineure?|personne|frère|sœur"
    r"|soeur|cousine?|amie?|copain|copine)\s+dite?)"
    r"|,\s*(?i:dite?|alias|a\.?k\.?a\.?|genaamd|genoemd|bijgenaamd|surnommée?))"
    r"(?!\w)[\s:\"']*" + _NAME
)
_RELATIONS_NL = (
    r"zoon|zoontje|dochter|broer|broertje|zus|zusje|zuster|vader|moeder|oom|tante|neef|nicht"
    r"|kleinzoon|kleindochter|grootvader|grootmoeder|opa|oma|stiefvader|stiefmoeder|stiefzoon"
    r"|stiefdochter|halfbroer|halfzus|schoonzoon|schoondochter|schoonbroer|schoonzus"
    r"|vriend|vriendin|vriendje|vriendinnetje|partner|echtgenoot|echtgenote|ex|lief|kameraad"
)
_RELATIONS_FR = (
    r"fils|fille|frère|frere|sœur|soeur|père|pere|mère|mere|oncle|tante|cousin|cousine|neveu"
    r"|nièce|niece|grand-père|grand-mère|beau-père|belle-mère|beau-frère|belle-sœur"
    r"|belle-soeur|demi-frère|demi-sœur|demi-soeur|ami|amie|meilleur\s+ami|meilleure\s+amie"
    r"|copain|copine|mari|épouse|époux|compagnon|compagne|petit\s+ami|petite\s+amie"
)
_RELATIONS_EN = (
    r"son|daughter|brother|sister|father|mother|uncle|aunt|cousin|nephew|niece|grandson"
    r"|granddaughter|grandfather|grandmother|stepfather|stepmother|stepson|stepdaughter"
    r"|half-brother|half-sister|friend|best\s+friend|girlfriend|boyfriend|husband|wife|partner"
)
_RELATION_OF_RE = re.compile(
    rf"(?<!\w)(?i:(?:{_RELATIONS_NL})\s+van|(?:{_RELATIONS_FR})\s+(?:de\s+|d')"
    rf"|(?:{_RELATIONS_EN})\s+of)\s*{_NAME}"
)
_POSSESSIVE_RELATION_RE = re.compile(
    rf"(?<!\w)(?i:(?:zijn|haar|z'n|hun)\s+(?:beste\s+|oudere\s+|jongere\s+)?(?:{_RELATIONS_NL})"
    rf"|(?:son|sa|leur)\s+(?:{_RELATIONS_FR})|(?:his|her|their)\s+(?:older\s+|younger\s+)?"
    rf"(?:{_RELATIONS_EN})),?\s+{_NAME}"
)
_FAMILY_RE = re.compile(
    rf"(?<!\w)(?i:familie|famille|gezin|family\s+of)\s+{_NAME}"
    rf"|(?<!\w)(?i:the)\s+(?P<name2>{_NAME_WORD})\s+(?i:family|household)(?!\w)"
)
# A lookahead, so that every word is tried as a first name ("Ook Arne Goossens").
_CAPITALISED_RE = re.compile(
    rf"(?<![\w'\-])(?=(?P<first>[A-ZÀ-ÖØ-Þ][\w\-]*)(?P<rest>(?:\s+{_NAME_WORD}){{1,4}}))"
)
_AGE_AFTER_RE = re.compile(
    r"\s*(?:\(\s*[0-9]{1,2}\s*(?:j|jr|jaar|ans?|y|yrs?|years?)?\.?\s*\)|,\s*[0-9]{1,2}\s*(?:j|jaar|ans|years?)\b)",
    re.IGNORECASE,
)
_WITH_NAME_RE = re.compile(
    r"(?<!\w)(?i:met|samen\s+met|avec|with|bij|chez|tussen|entre|between)\s+"
    r"(?P<name>(?-i:[A-ZÀ-ÖØ-Þ])[\w'\-]*)(?![\w'\-])(?!\s+(?-i:[A-ZÀ-ÖØ-Þ]))"
)
# "a appelé le CPAS", "the school called the police": phoning, not naming.
_PHONING_BEFORE_RE = re.compile(
    r"(?<!\w)(?:a|ont|avait|had|has|have|we|they|school|mother|father|police|\w+\s+has)\s*$",
    re.IGNORECASE,
)
# "het project heet Kompas", "de beweging genaamd X": the thing named is not a person.
_THING_BEFORE_RE = re.compile(
    r"(?<!\w)(?:project|traject|programma|plan|actieplan|initiatief|werking|dienst|team|vzw"
    r"|organisatie|school|groep|zone|wijk|dossier|overleg|netwerk|platform|app|huis|centrum"
    r"|beweging|vereniging|partij|kanaal|film|boek|lied|game|spel|moskee|kerk|club|bende"
    r"|projet|programme|service|équipe|equipe|asbl|association|école|ecole|groupe|quartier"
    r"|réseau|reseau|centre|maison|mouvement|parti|chaîne|chaine|mosquée|église|bande"
    r"|program|scheme|organisation|organization|network|center|group|district|meeting"
    r"|movement|party|channel|gang|mosque|church|operation|operatie|opération|campagne"
    r"|campaign)s?(?:\s*,?\s+\w+)?\s*,?\s*$",
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


def _not_a_name(word: str) -> bool:
    lower = word.casefold()
    return (
        len(word) < 2
        or lower.startswith(ROLE_STEMS)
        or lower in ROLE_WORDS
        or lower in NOT_NAMES
        or (word.isupper() and len(word) <= 5)  # an acronym: CLB, OCMW, CPAS
    )


def _known_name(word: str, *, common_too: bool = False) -> bool:
    """Whether the lexicon knows word as a name (and, unless common_too, as no common word)."""
    folded = fold(word)
    return (folded in FIRST_NAMES or folded in SURNAMES) and (
        common_too or folded not in COMMON_WORDS
    )


def _after_title(match: re.Match[str]) -> bool:
    name = match.group("name")
    title = match.group("title").casefold()
    if _not_a_name(name):
        return False
    if title in ("juf", "juffrouw", "meester") and name.casefold() in SCHOOL_SUBJECTS:
        return False  # "de juf Nederlands": a teacher by subject
    if name[0].isupper():
        return True
    # In lower case ("mevr. demir", "mme el amrani", "mevrouw de wolf"): a word the lexicon
    # knows as a name; after a surname particle even when it is also a common word.
    return _known_name(name, common_too=bool(match.group("particles").strip()))


def _after_introducer(text: str, match: re.Match[str]) -> bool:
    name = match.group("name")
    intro = match.group("intro").casefold()
    if _not_a_name(name):
        return False
    before = text[max(0, match.start() - 40) : match.start()]
    if intro.startswith(("called", "appel")) and (
        _PHONING_BEFORE_RE.search(before) or match.group("particles").strip()
    ):
        return False
    if intro.startswith(","):  # ", dite Lulu": only a capitalised name, no article
        return name[0].isupper() and not match.group("particles").strip()
    if _THING_BEFORE_RE.search(before) and not _PERSON_BEFORE_RE.search(before):
        return False
    return name[0].isupper() or _known_name(name)


def _capitalised_name(match: re.Match[str], name_group: str = "name") -> bool:
    name = match.group(name_group)
    return name is not None and name[0].isupper() and not _not_a_name(name)


def _full_names(text: str) -> bool:
    for match in _CAPITALISED_RE.finditer(text):
        first = match.group("first")
        folded = fold(first)
        if folded not in FIRST_NAMES or folded in COMMON_WORDS or _not_a_name(first):
            continue
        words = match.group("rest").split()
        index = 0
        while index < len(words) - 1 and words[index].casefold() in _PARTICLE_SET:
            index += 1
        surname = words[index]
        if not surname[0].isupper() or _not_a_name(surname):
            continue
        end = match.start("rest") + match.group("rest").find(surname) + len(surname)
        if fold(surname) in SURNAMES or _AGE_AFTER_RE.match(text, end):
            return True
    return False


def _accompanied_first_names(text: str) -> bool:
    """A first name alone after "met", "avec", "with" ("gesprek met Bilal en zijn moeder")."""
    for match in _WITH_NAME_RE.finditer(text):
        name = match.group("name")
        folded = fold(name)
        if folded in FIRST_NAMES and folded not in COMMON_WORDS and not _not_a_name(name):
            return True
    return False


def person_names(text: str) -> Iterator[Finding]:
    """Names of people, introduced or (for full names) on their own."""
    found = (
        any(_after_title(m) for m in _TITLE_RE.finditer(text))
        or any(_after_introducer(text, m) for m in _INTRODUCER_RE.finditer(text))
        or any(_capitalised_name(m) for m in _RELATION_OF_RE.finditer(text))
        or any(_capitalised_name(m) for m in _POSSESSIVE_RELATION_RE.finditer(text))
        or any(
            _capitalised_name(m, "name" if m.group("name") else "name2")
            for m in _FAMILY_RE.finditer(text)
        )
        or _full_names(text)
        or _accompanied_first_names(text)
    )
    if found:
        yield Finding.PERSON_NAME
