"""Which SAML SPs received an assertion in each SSO session, under which NameID and
SessionIndex: whom single logout must reach (SAML Profiles §4.4).

Rows are short-lived. The logout chain forgets a session's rows when it starts (it carries them
in its own state). A session that ends without the chain (a leaver, an administrator, an upstream's
logout) keeps its rows for ``ENDED_GRACE`` so an SP's later LogoutRequest still finds the
person and the other SPs are still chained; after that, and as soon as a session's lifetime is
over, ``purge`` deletes them: ``supercloud db purge`` (for cron), and a serving worker at most
every ``PURGE_EVERY`` when it records a new participant.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.models import SamlSessionParticipantRow, SsoSessionRow
from broker.storage.types import utcnow

#: How long the rows of a session that ended without the logout chain are kept (see the module docstring).
ENDED_GRACE = dt.timedelta(hours=1)
#: How often (seconds) a serving worker purges while recording participants.
PURGE_EVERY = 600.0

log = logging.getLogger(__name__)


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

    def __init__(self, db: sessionmaker[Session], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._clock = clock
        self._last_purge = clock()
        self._purge_lock = threading.Lock()

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
        self._purge_if_due()

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


    def purge(self, *, now: dt.datetime | None = None, ended_grace: dt.timedelta = ENDED_GRACE) -> int:
        """Delete the rows of sessions that are over: expired (``expires_at`` passed), ended more
        than ``ended_grace`` ago, or no longer in the database. Returns how many rows were deleted."""
        now = now or utcnow()
        session_row = SsoSessionRow
        over = exists().where(
            session_row.sid == SamlSessionParticipantRow.sid,
            or_(session_row.expires_at <= now, and_(session_row.ended_at.is_not(None), session_row.ended_at <= now - ended_grace)),
        )
        gone = ~exists().where(session_row.sid == SamlSessionParticipantRow.sid)
        with self._db.begin() as session:
            result = session.execute(delete(SamlSessionParticipantRow).where(or_(over, gone)),
                                     execution_options={"synchronize_session": False})
        return result.rowcount or 0

    def _purge_if_due(self) -> None:
        """Purge at most every ``PURGE_EVERY`` seconds per process (one worker thread does it)."""
        if self._clock() - self._last_purge < PURGE_EVERY or not self._purge_lock.acquire(blocking=False):
            return
        try:
            self._last_purge = self._clock()
            self.purge()
        except Exception:  # noqa: BLE001 - housekeeping: the assertion is already recorded; retried next time
            log.exception("purging the SAML session participants of ended sessions failed")
        finally:
            self._purge_lock.release()


def _participant(row: SamlSessionParticipantRow) -> Participant:
    return Participant(row.sid, row.sp_entity_id, row.subject_id, row.name_id, row.name_id_format, row.session_index)
