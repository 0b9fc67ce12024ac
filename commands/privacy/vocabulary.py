"""Word lists shared by the detectors: functions, school subjects, words that are no names."""

from __future__ import annotations

__all__ = ["NOT_NAMES", "ROLE_STEMS", "ROLE_WORDS", "SCHOOL_SUBJECTS"]

# Functions and forms of address that follow a title without being a name
# ("Mevrouw de Burgemeester", "Monsieur le Curé", "Madame la Psychologue").
ROLE_STEMS: tuple[str, ...] = (
    "burgemeester", "voorzit", "schepen", "procureu", "secretar", "directeu", "directri",
    "directo", "commissa", "inspect", "agent", "rechter", "minist", "gouvern", "korpschef",
    "bourgmest", "présid", "presid", "échevin", "echevin", "substitu", "prosecut", "officer",
    "secretary", "secrétaire", "alderman", "coordin", "coördin", "conseill", "raadslid",
    "raadsheer", "ambassad", "rector", "decaan", "koning", "bestuurder", "madame", "monsieur",
    "mevrouw", "meneer", "mijnheer", "mademoiselle", "messieurs", "mesdames", "docteur",
    "dokter", "doctor", "professor", "professeur", "verantwoordelijke", "responsable",
    "manager", "leerkracht", "teacher", "hoofdinspect", "hoofdcommiss", "afgevaardigde",
    # religious functions
    "pastoor", "pasto", "curé", "cure", "abbé", "abbe", "dominee", "imam", "rabbi", "rabbijn",
    "priest", "priester", "prêtre", "pretre", "pasteur", "aalmoezenier", "aumônier", "deken",
    "bisschop", "évêque", "eveque", "bishop", "kapelaan", "vicaris", "vicaire",
    # care and education
    "psycholo", "psychiat", "pedago", "pédago", "orthopedago", "orthopédago", "therapeu",
    "thérapeu", "thérapist", "maatschappelijk", "assistant", "educat", "éducat", "opvoed",
    "begeleid", "consulent", "médiat", "mediat", "juge", "avocat", "advocaat", "lawyer",
    "notaris", "notaire", "verpleeg", "infirmi", "nurse", "arts", "huisarts", "médecin",
    "medecin", "wijkagent", "commandant", "hoofd", "chef", "directie", "zorgco", "counsel",
    "mentor", "titularis", "titulaire", "surveill", "préfet", "prefet", "proviseur", "censeur",
    "chair", "mayor", "judge", "conseiller", "consul", "deleg", "délég", "vertegenwoordig",
    "représent", "represent", "voorzitster", "schepen", "raad", "gouverneur",
)  # fmt: skip
ROLE_WORDS: frozenset[str] = frozenset(
    {
        "chief", "king", "queen", "roi", "reine", "prince", "princesse", "prinses", "dame",
        "heer", "sir", "mr", "mrs", "ms", "miss", "doyen", "premier", "president", "abt",
        "pater", "zuster", "soeur", "sœur", "frère", "broeder", "père", "moeder", "madam",
    }
)  # fmt: skip
# After "juf", "meester": the subject they teach ("de juf Nederlands", "meester wiskunde").
SCHOOL_SUBJECTS: frozenset[str] = frozenset(
    {
        "nederlands", "frans", "engels", "duits", "spaans", "wiskunde", "wisk",
        "geschiedenis", "aardrijkskunde", "lo", "turnen", "gym", "godsdienst", "islam",
        "zedenleer", "biologie", "chemie", "fysica", "muziek", "techniek", "informatica",
        "economie", "latijn", "grieks", "wetenschappen", "mavo", "plastische", "tekenen",
        "français", "néerlandais", "anglais", "allemand", "maths", "math", "histoire",
        "géographie", "sciences", "morale", "religion", "english", "dutch", "french",
        "history", "science", "arabisch", "arabe", "arabic", "sport", "knutselen", "lager",
    }
)  # fmt: skip
# Capitalised words that are not names: days, months, common words at the start of a
# sentence, places of work.
NOT_NAMES: frozenset[str] = frozenset(
    {
        "maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag",
        "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche", "monday",
        "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "januari",
        "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
        "november", "december", "janvier", "février", "mars", "avril", "mai", "juin", "juillet",
        "août", "septembre", "octobre", "novembre", "décembre", "january", "february",
        "march", "may", "june", "july", "august", "october", "police", "politie", "school",
        "team", "project", "projet", "the", "de", "het", "le", "la", "les", "een", "un", "une",
        "noël", "kerstmis", "pasen", "pâques", "christmas", "easter", "ramadan", "suikerfeest",
        "offerfeest", "allah", "god", "dieu", "islam", "jezus", "jésus", "jesus",
        "cpas", "ocmw", "clb", "caw", "amo", "saj", "spj", "vdab", "forem", "actiris",
        "justitiehuis", "zone", "stad", "ville", "gemeente", "commune", "wijk", "quartier",
        "avenue", "rue", "place", "boulevard", "chaussée", "straat", "laan", "plein",
        "dear", "beste", "chère", "cher", "hallo", "bonjour", "hello", "merci", "dank",
        "ook", "en", "et", "and", "met", "avec", "with", "voor", "pour", "for", "dat", "que",
        "hij", "zij", "il", "elle", "he", "she", "they", "ze", "wij", "nous", "we", "hun",
        "zijn", "haar", "son", "sa", "ses", "his", "her", "their", "leur", "wel", "niet",
        "geen", "pas", "not", "no", "nee", "non", "oui", "ja", "yes", "is", "est", "was",
        "sinds", "depuis", "since", "na", "après", "after", "avant", "before", "in",
        "op", "sur", "on", "at", "bij", "chez", "uit", "van", "du", "des", "of", "from",
    }
)  # fmt: skip
