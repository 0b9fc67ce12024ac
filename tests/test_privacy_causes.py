"""The privacy guard, cause by cause (issue 17): each weak spot fixed where it came from.

Every sentence here is invented; numbers carry valid check digits but belong to nobody.
"""

from __future__ import annotations

import pytest

from commands.privacy import Finding, screen
from commands.privacy.lexicon import FIRST_NAMES, SURNAMES, fold


def _found(text: str, kind: Finding) -> None:
    assert kind in screen(text), text


def _passes(text: str) -> None:
    assert screen(text) == frozenset(), text


# ---------------------------------------------------------------------- street addresses


@pytest.mark.parametrize(
    "text",
    [
        "woont Molenstraat 9/2",
        "Veldstraat 31/0004 is het nieuwe adres",
        "Chaussée de Wavre 118/3",
        "avenue des Volontaires 12/1",
    ],
)
def test_a_box_written_with_a_slash_is_part_of_the_house_number(text: str) -> None:
    _found(text, Finding.STREET_ADDRESS)


@pytest.mark.parametrize(
    "text", ["9, rue des Chartreux", "3 bis, allée des Peupliers", "loge au 21, quai des Usines"]
)
def test_french_number_first_addresses_read_des_as_one_word(text: str) -> None:
    _found(text, Finding.STREET_ADDRESS)


@pytest.mark.parametrize(
    "text",
    ["op nummer 8 in de Dorpstraat", "nr. 112 van de Gentsesteenweg", "nummer 4 aan de Vaart"],
)
def test_dutch_number_first_addresses(text: str) -> None:
    _found(text, Finding.STREET_ADDRESS)


@pytest.mark.parametrize(
    "text",
    ["Kerkplaats 4", "Rozenhof 12", "Heidepad 7", "woont Meersplantsoen 3", "Akkerwegel 2"],
)
def test_more_dutch_street_words(text: str) -> None:
    _found(text, Finding.STREET_ADDRESS)


@pytest.mark.parametrize(
    "text",
    [
        "Adres: Eikendreef nr. 5",
        "Adres Kastanjelaan 8",
        "woont op de Meir 40",
        "verblijft op de Kouter nr 3",
        "habite Grand-Place 7",
    ],
)
def test_a_name_with_a_number_after_a_residence_word_or_nr(text: str) -> None:
    _found(text, Finding.STREET_ADDRESS)


@pytest.mark.parametrize(
    "text",
    [
        "In de Brugstraat 4 incidenten dit jaar",
        "Op de Groenplaats 25 jongeren samengekomen",
        "Avenue de la Toison d'Or, 12 jeunes interpellés",
        "Boulevard Lemonnier 3 fois cette semaine",
        "Zomermarkt 14 juli zonder problemen",
        "Marché de Noël 20 décembre",
        "Agendapunt nr 3: opvolging",
        "woont in Gent 2 straten verder",
        "habite Namur, 3 frères et 2 sœurs",
    ],
)
def test_a_count_or_a_date_after_a_street_name_is_no_house_number(text: str) -> None:
    _passes(text)


# ---------------------------------------------------------------------- ids and numbers


@pytest.mark.parametrize(
    "text", ["rekening BE 43 7310 0123 4501", "compte BE14.0631.2345.6783", "BE10-1430-9876-5404"]
)
def test_ibans_with_a_space_after_the_country_or_dots(text: str) -> None:
    _found(text, Finding.IBAN)


def test_national_numbers_with_underscores() -> None:
    _found("RRN 07_03_14_117_48", Finding.NATIONAL_NUMBER)


@pytest.mark.parametrize(
    "text",
    ["KBO-nummer 0456.789.012", "numéro d'entreprise 0475 123 456", "BCE 0403.019.261"],
)
def test_enterprise_numbers_are_no_phone_numbers(text: str) -> None:
    _passes(text)


def test_a_mobile_number_with_dots_is_still_a_phone() -> None:
    _found("gsm 0475.12.34.56", Finding.PHONE)


# ------------------------------------------------------------------------------- e-mail


@pytest.mark.parametrize(
    "text",
    [
        "mail: sofie punt peeters at telenet punt be",
        "écrire à karim point b arobase gmail point com",
        "contact jan dot smet at outlook dot com",
        "mail an.claes apenstaart skynet.be",
        "noor(at)proximus(dot)be",
    ],
)
def test_spelled_out_e_mail_addresses(text: str) -> None:
    _found(text, Finding.EMAIL)


@pytest.mark.parametrize(
    "text", ["We meet at school point of contact", "Hij was at home dot", "Rendez-vous at 10h"]
)
def test_at_and_point_in_prose_are_no_e_mail(text: str) -> None:
    _passes(text)


# ------------------------------------------------------------------------ dates of birth


@pytest.mark.parametrize(
    "text",
    [
        "geboren in Gent, als tweede van vier kinderen, op 14/02/2009",
        "geboren in 2008 op 3 juni",
        "geb. 21-feb-2007",
        "born 04-Nov-2006",
        "née le 12 09 2008",
        "zijn verjaardag is 5 maart",
    ],
)
def test_dates_of_birth_far_from_the_birth_word_or_in_other_writings(text: str) -> None:
    _found(text, Finding.DATE_OF_BIRTH)


@pytest.mark.parametrize(
    "text",
    [
        "11 juli: verjaardag van de werking",
        "Anniversaire de l'école le 3 mai",
        "Anniversary of the riots on 14 June",
        "Geboren uit een samenwerking in 2019; overleg op 12/05/2026",
    ],
)
def test_anniversaries_of_events_are_no_dates_of_birth(text: str) -> None:
    _passes(text)


# ------------------------------------------------------------------------ licence plates


@pytest.mark.parametrize(
    "text",
    [
        "Franse wagen AB-123-CD",
        "Nederlandse auto 7-KXV-12",
        "plaque NL 35-JZ-FR",
        "Duitse wagen M-XY 4521",
        "plaque luxembourgeoise ZK 4521",
    ],
)
def test_plates_of_the_neighbouring_countries(text: str) -> None:
    _found(text, Finding.LICENCE_PLATE)


@pytest.mark.parametrize("text", ["Dossier C-7KQ2M", "KB 26-09-2018", "CLB-2-AB"])
def test_codes_and_dates_are_no_plates(text: str) -> None:
    _passes(text)


# ----------------------------------------------------------------------------- handles


@pytest.mark.parametrize(
    "text",
    [
        "insta mehdi_lgg",
        "zijn TikTok is yasmina.x09",
        "pseudo snap ilyes.b12",
        "Discord-naam shadow_2007",
        "instagram account kim.vdb",
    ],
)
def test_handles_after_a_platform_label_without_a_colon(text: str) -> None:
    _found(text, Finding.SOCIAL_HANDLE)


@pytest.mark.parametrize(
    "text",
    [
        "@els neemt dit op",
        "Vraag aan @pieter of de school al belde",
        "Zie youtube.com/watch?v=aB3dE5fG7 voor de reportage",
        "https://youtu.be/aB3dE5fG7",
        "Op insta sinds het 2de middelbaar",
    ],
)
def test_member_mentions_and_video_links_are_no_handles(text: str) -> None:
    _passes(text)


@pytest.mark.parametrize(
    "text", ["!members add @x:example.be partner CAW", "zie x.com voor het beleid"]
)
def test_a_platform_name_inside_a_user_id_or_domain_is_no_label(text: str) -> None:
    _passes(text)


def test_a_letters_only_handle_about_social_media_still_counts() -> None:
    _found("volgt @haqqmedia op TikTok", Finding.SOCIAL_HANDLE)


# ------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "text", ["gesprek met mevr. yilmaz", "dhr. de smet belde", "mme el idrissi est venue"]
)
def test_lower_case_names_after_a_title(text: str) -> None:
    _found(text, Finding.PERSON_NAME)


@pytest.mark.parametrize(
    "text", ["sa voisine, dite Mimi", "zijn neef, alias Kobe", "le grand frère, surnommé Rocky"]
)
def test_a_nickname_after_a_comma(text: str) -> None:
    _found(text, Finding.PERSON_NAME)


@pytest.mark.parametrize(
    "text",
    [
        "dochter van Naima",
        "halfbroer van Dries",
        "la fille de Rachid",
        "cousine d'Aïcha",
        "daughter of Karen",
        "zijn vriendin Laura",
        "son frère Anas",
        "de familie Aerts",
        "la famille Mertens",
        "the Claes family",
    ],
)
def test_family_relations_introduce_names(text: str) -> None:
    _found(text, Finding.PERSON_NAME)


@pytest.mark.parametrize(
    "text",
    ["Lotte Vermeulen meldt zich af", "Ook Ruben Maes was erbij", "Yassine Tahiri (15)"],
)
def test_full_names_on_their_own_via_the_lexicon(text: str) -> None:
    _found(text, Finding.PERSON_NAME)


@pytest.mark.parametrize(
    "text",
    [
        "Meneer de Pastoor komt langs",
        "Monsieur l'Abbé est présent",
        "Madame la Pédagogue rédige le rapport",
        "De juf Wiskunde ziet hem slapen",
        "Mevrouw de Maatschappelijk Werker belt terug",
        "De juf van het vierde leerjaar merkt het op",
        "Dokter van wacht werd verwittigd",
    ],
)
def test_functions_after_a_form_of_address_are_no_names(text: str) -> None:
    _passes(text)


@pytest.mark.parametrize(
    "text",
    [
        "de organisatie genaamd Hoop4Gent",
        "une association nommée Horizon Jeunes",
        "The mosque called the police",
        "La directrice a appelé le CPAS",
        "Hij volgt een werking, die heet Kompas",
        "de vader van het kind",
        "le frère de la victime",
        "Avenue Louise, 20 policiers",
    ],
)
def test_naming_things_and_phoning_are_no_names(text: str) -> None:
    assert Finding.PERSON_NAME not in screen(text), text


def test_the_lexicon_comes_from_deduce_and_folds_accents() -> None:
    assert len(FIRST_NAMES) > 10_000
    assert len(SURNAMES) > 10_000
    assert fold("Théo") == "theo"
    assert fold("Theo") in FIRST_NAMES
