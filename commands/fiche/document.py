"""The feedback fiche (terugkoppelingsfiche, spec §9): the guideline's five criteria, its key
question, and the delivery of an adopted fiche to the cell's information officers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commands.dossiers.workflow import get_dossier
from commands.framework import Attachment, Output, Reply
from commands.members.roster import table_members
from commands.model import Cell, Role, Table
from storage.repositories import Repositories


@dataclass(frozen=True)
class Field:
    name: str
    values: tuple[str, ...] = ()  # empty: free text (screened by the privacy guard)
    required: bool = True
    max_length: int = 1000


FIELDS: tuple[Field, ...] = (
    Field("effectiveness", ("positive", "neutral", "negative", "unknown")),
    Field("willingness", ("high", "moderate", "low", "none")),
    Field("distancing", ("full", "partial", "none", "unknown")),
    Field("continue", ("yes", "no")),
    Field("options", ("yes", "no")),
    Field("other", (), required=False, max_length=1000),
    Field("readiness", ("no-indications", "some-indications", "strong-indications")),
    Field("readiness_note", (), required=False, max_length=500),
)
BY_NAME: Mapping[str, Field] = {f.name: f for f in FIELDS}


def missing(values: Mapping[str, str]) -> list[str]:
    """Required fields that are still empty."""
    return [f.name for f in FIELDS if f.required and not values.get(f.name)]


def fiche_values(repos: Repositories, cell: Cell, code: str) -> dict[str, str]:
    record = repos.fiches.get(cell.id, code)
    return dict(record.values) if record else {f.name: "" for f in FIELDS}


def fiche_complete(repos: Repositories, cell: Cell, code: str) -> list[str]:
    """The missing required fields of a dossier's fiche (empty list: complete)."""
    return missing(fiche_values(repos, cell, code))


def information_officers(cell: Cell, repos: Repositories) -> tuple[str, ...]:
    """Who receives an adopted fiche: the information officers on the cell's operational
    roster (with a chair's changes) who acknowledged at that table — an acknowledgement is
    given in the table's room, so they joined it (spec §11). The edge adds "and trusted"."""
    return tuple(m.user_id for m in table_members(cell, repos, Table.OPERATIONAL)
                 if m.role is Role.INFORMATION_OFFICER
                 and repos.acks.has_acked(cell.id, Table.OPERATIONAL.value, m.user_id))


def document(repos: Repositories, cell: Cell, code: str, *, decided: datetime,
             participants: int, recused: int = 0) -> dict[str, Any]:
    """Everything the fiche templates show: no names, only the case code."""
    record = get_dossier(repos, cell, code)
    return {
        "cell": cell.name,
        "municipalities": list(cell.municipalities),
        "table": Table.OPERATIONAL.value,
        "code": code,
        "phenomenon": record.phenomenon,
        "date": decided.astimezone(cell.tz).date().isoformat(),
        "fields": fiche_values(repos, cell, code),
        "participants": participants,
        "recused": recused,
    }


def delivery(repos: Repositories, cell: Cell, code: str, now: datetime, *,
             participants: int, decided: datetime, recused: int = 0) -> list[Output]:
    """An adopted fiche goes to every information officer in an encrypted direct room."""
    data = document(repos, cell, code, decided=decided, participants=participants,
                    recused=recused)
    officers = information_officers(cell, repos)
    outputs: list[Output] = [
        Reply("fiche", data, direct_to=officer, in_reply=False, delivery=code,
              attachment=Attachment(f"fiche-{code}-{data['date']}.md", "text/markdown",
                                    "fiche", data))
        for officer in officers
    ]
    repos.fiches.sent(cell.id, code, now)
    repos.audit.record(cell=cell.id, actor="livcr-bot", action="fiche_sent", at=now, code=code,
                       decision_ref=f"officers:{len(officers)}")
    if not officers:
        outputs.append(Reply("msg:fiche.delivered", {"code": code, "count": 0},
                             in_reply=False))
    # Otherwise the table hears "sent to N" from the edge once the fiches went out
    # (``Core.delivery_outcome``), and "NOT delivered" for each one that could not.
    return outputs
