"""Which SAML SPs received an assertion in each SSO session, under which NameID and
SessionIndex: whom single logout must reach (SAML Profiles §4.4)."""

from __future__ import annotations

import dataclasses

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.models import SamlSessionParticipantRow
from broker.storage.types import utcnow


@dataclasses.dataclass(frozen=True, slots=True)
class Participant:
    """One SP in one session."""

    sid: str
    sp_entity_id: str
    subject_id: str
    name_id: str
    name_id_format: str
    session_index: str


class Participants:
    """Records and lists the SAML SPs of each session."""

    def __init__(self, db: sessionmaker[Session]) -> None:
        self._db = db

    def record(self, participant: Participant) -> None:
        """Remember (or update, e.g. a new transient NameID) that an SP received an assertion in a session."""
        with self._db.begin() as session:
            row = session.get(SamlSessionParticipantRow, (participant.sid, participant.sp_entity_id))
            if row is None:
                row = SamlSessionParticipantRow(sid=participant.sid, sp_entity_id=participant.sp_entity_id,
                                                created_at=utcnow())
                session.add(row)
            row.subject_id = participant.subject_id
            row.name_id = participant.name_id
            row.name_id_format = participant.name_id_format
            row.session_index = participant.session_index

    def in_session(self, sid: str) -> list[Participant]:
        """Return the SPs of session ``sid``, by entity id."""
        with self._db() as session:
            rows = session.execute(select(SamlSessionParticipantRow).where(SamlSessionParticipantRow.sid == sid)
                                   .order_by(SamlSessionParticipantRow.sp_entity_id)).scalars().all()
        return [_participant(r) for r in rows]

    def find(self, sp_entity_id: str, name_id: str, session_indexes: tuple[str, ...]) -> list[Participant]:
        """Return the sessions in which ``sp_entity_id`` knows the person as ``name_id`` (restricted
        to ``session_indexes`` when the LogoutRequest names any, SAML Core §3.7.1)."""
        with self._db() as session:
            query = select(SamlSessionParticipantRow).where(SamlSessionParticipantRow.sp_entity_id == sp_entity_id,
                                                            SamlSessionParticipantRow.name_id == name_id)
            if session_indexes:
                query = query.where(SamlSessionParticipantRow.session_index.in_(session_indexes))
            rows = session.execute(query).scalars().all()
        return [_participant(r) for r in rows]

    def forget_session(self, sid: str) -> None:
        """Forget every SP of session ``sid`` (after logout)."""
        with self._db.begin() as session:
            session.execute(delete(SamlSessionParticipantRow).where(SamlSessionParticipantRow.sid == sid))


def _participant(row: SamlSessionParticipantRow) -> Participant:
    return Participant(row.sid, row.sp_entity_id, row.subject_id, row.name_id, row.name_id_format, row.session_index)
