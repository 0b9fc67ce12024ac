"""The kinds of personal data the guard reports (one refusal phrase per kind in templates)."""

from __future__ import annotations

import enum

__all__ = ["Finding"]


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
