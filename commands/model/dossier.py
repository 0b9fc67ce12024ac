"""Dossier statuses, the legal transitions between them (spec §7), phenomena and contexts."""

from __future__ import annotations

import enum
from collections.abc import Mapping


class Status(enum.StrEnum):
    SIGNALLED = "signalled"
    ASSESSING = "assessing"
    FOLLOW_UP = "follow_up"
    NOT_RETAINED = "not_retained"
    EVALUATION = "evaluation"
    CLOSED = "closed"


OPEN = (Status.SIGNALLED, Status.ASSESSING, Status.FOLLOW_UP, Status.EVALUATION)
FINAL = (Status.NOT_RETAINED, Status.CLOSED)

TRANSITIONS: Mapping[Status, tuple[Status, ...]] = {
    Status.SIGNALLED: (Status.ASSESSING, Status.FOLLOW_UP, Status.NOT_RETAINED),
    Status.ASSESSING: (Status.FOLLOW_UP, Status.NOT_RETAINED),
    Status.FOLLOW_UP: (Status.EVALUATION, Status.CLOSED),
    Status.EVALUATION: (Status.FOLLOW_UP, Status.CLOSED),
    Status.NOT_RETAINED: (),
    Status.CLOSED: (),
}


class Phenomenon(enum.StrEnum):
    """The default phenomena: the federal Strategy T.E.R. (2021), spec §13."""

    FTF = "FTF"
    HTF = "HTF"
    HP = "HP"
    PVE = "PVE"  # potentially violent extremist
    CONVICT = "convict"  # terrorism convict after release
    CHILD = "child"
    EARLY = "early"


DEFAULT_PHENOMENA = tuple(p.value for p in Phenomenon)

#: ``ideology=`` of a signal (optional; configurable per cell).
DEFAULT_IDEOLOGIES = ("jihadist", "right-wing", "left-wing", "anti-government", "single-issue",
                      "unclear")


CONTEXTS = (
    "family",
    "identity",
    "school",
    "work",
    "psychological",
    "housing",
    "health",
    "leisure",
    "finances",
    "justice",
    "social-network",
    "online",
)
