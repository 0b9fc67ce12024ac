"""The encrypted direct room of each information officer, per cell."""

from __future__ import annotations

from sqlmodel import Session, select

from storage.models import DirectRoom


class DirectRoomRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, cell: str, user_id: str) -> str | None:
        row = self._session.get(DirectRoom, (cell, user_id))
        return row.room_id if row else None

    def set(self, cell: str, user_id: str, room_id: str) -> None:
        row = self._session.get(DirectRoom, (cell, user_id))
        if row is None:
            self._session.add(DirectRoom(cell=cell, user_id=user_id, room_id=room_id))
        else:
            row.room_id = room_id
            self._session.add(row)


    def owner(self, room_id: str) -> tuple[str, str] | None:
        """``(cell, user_id)`` whose direct room this is, or None."""
        row = self._session.exec(select(DirectRoom).where(DirectRoom.room_id == room_id)).first()
        return (row.cell, row.user_id) if row else None
