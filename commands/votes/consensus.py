"""The consensus rule (spec §9): adopted only when every eligible member's latest ballot is yes.

Eligible voters are exactly the members recorded present in the meeting in progress (the
"effectief deelnemende leden"; Constitutional Court ruling 52/2021). A ``no`` or an ``abstain``
blocks until changed; a missing ballot at closing means not adopted.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class Choice(enum.StrEnum):
    YES = "yes"
    NO = "no"
    ABSTAIN = "abstain"


#: ``reason=`` of a ``no`` or ``abstain``: a fixed list, never free text (spec §9).
REASONS = ("more-information", "not-for-this-table", "disagree-measures", "secrecy-concern",
           "other")


class Kind(enum.StrEnum):
    """What a vote decides."""

    ACCEPT = "accept"  # follow the person up: dossier to follow_up
    REJECT = "reject"  # not enough elements: dossier to not_retained
    CLOSE = "close"  # end the follow-up: dossier to closed
    FICHE = "fiche"  # send the feedback fiche to the information officer(s)


class State(enum.StrEnum):
    OPEN = "open"
    ADOPTED = "adopted"
    NOT_ADOPTED = "not_adopted"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Tally:
    """Who voted what among the eligible, and who is still missing."""

    eligible: tuple[str, ...]
    ballots: Mapping[str, Choice]

    @property
    def yes(self) -> tuple[str, ...]:
        return tuple(u for u in self.eligible if self.ballots.get(u) is Choice.YES)

    @property
    def no(self) -> tuple[str, ...]:
        return tuple(u for u in self.eligible if self.ballots.get(u) is Choice.NO)

    @property
    def abstain(self) -> tuple[str, ...]:
        return tuple(u for u in self.eligible if self.ballots.get(u) is Choice.ABSTAIN)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(u for u in self.eligible if u not in self.ballots)

    @property
    def unanimous(self) -> bool:
        """Every eligible member voted yes (and there is at least one)."""
        return bool(self.eligible) and len(self.yes) == len(self.eligible)

    @property
    def blocked(self) -> bool:
        return bool(self.no or self.abstain)


def tally(eligible: Iterable[str], ballots: Iterable[tuple[str, Choice]]) -> Tally:
    """Latest ballot per eligible member wins; ballots of others are ignored."""
    voters = tuple(dict.fromkeys(eligible))
    latest: dict[str, Choice] = {}
    allowed = set(voters)
    for user, choice in ballots:
        if user in allowed:
            latest[user] = choice
    return Tally(voters, latest)


def outcome(t: Tally) -> State:
    """The result when the vote closes now."""
    return State.ADOPTED if t.unanimous else State.NOT_ADOPTED
