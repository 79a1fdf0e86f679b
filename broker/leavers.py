"""Leavers lose access at their next SSO use or token refresh (SCENARIOS policy 5).

``LeaverCheck`` wraps the access gate. The gate is asked before every authorization code
(sign-in and SSO reuse), every refresh-token grant and every userinfo answer, so this is
the one place every later use of a session passes through. For an identity from a
``RefreshableSource`` (a directory) it re-reads the account from its source, live at every
use by default, or at most once per ``recheck_seconds`` for the same sign-in where a source
configures one (``LdapSourceConfig.status_recheck_seconds``: a leaver keeps access that long
at most, in exchange for fewer directory reads), and then asks the inner gate with the
identity as the directory sees it *now* (groups changed since sign-in change teams and roles).

Outcomes of the refresh:

* the account is active: the inner gate decides on the refreshed identity;
* ``ACCOUNT_NOT_ACTIVE`` (disabled, locked, expired, deleted — e.g. AD
  ``userAccountControl`` ACCOUNTDISABLE, MS-ADTS §2.2.16): every SSO session of the person
  is ended and the tokens issued in them are revoked (``end_sessions``), the audit log
  records the precise reason, and ``AccessDenied`` is raised;
* ``SOURCE_UNAVAILABLE`` (no domain controller answers): **fail closed**. Access is refused
  for now with "Sign-in for <organisation> is unavailable", but the session is *not* ended:
  an outage is not evidence that anyone left, so when the directory answers again the same
  session works without signing in again. Granting a grace period instead would let a
  leaver keep using a live session exactly when the directory cannot say they left (an
  attacker who can cut the broker off from a DC would buy time), so it is not offered.
  The blast radius of an outage is bounded by the cache: people checked within the last
  ``recheck_seconds`` carry on until their entry expires;
* any other failure (misconfiguration, an identity the source does not recognise): fail
  closed with a generic denial, audited.

The cache is per process (workers do not share it), bounded, and keyed by the person's
source subject and the time they authenticated, i.e. per sign-in session; only successful
checks are cached, so a leaver is never remembered as active beyond ``recheck_seconds``.
A sign-in younger than ``recheck_seconds`` counts as a check: the directory has just
verified the password and read the account's status (so a sign-in costs no extra lookup).
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping

from broker.access import AccessDenied, AccessGate, AccessGrant
from broker.audit import AuditEvent
from federation.errors import FederationError, FederationErrorCode
from federation.identity import Identity, SubjectRef
from federation.organisations import OrganisationRegistry
from federation.sources import RefreshableSource

DEFAULT_CACHE_SECONDS = 0.0  # live at every use unless a source's configuration says otherwise
DEFAULT_CACHE_ENTRIES = 50_000
LEAVER_MESSAGE = "Your account can no longer be used to sign in here. If you think this is wrong, contact your organisation's IT service desk."
UNAVAILABLE_MESSAGE = "Sign-in for {organisation} is unavailable at the moment. Try again in a few minutes."
FAILED_MESSAGE = "We could not check your account with your organisation just now. Try again in a few minutes."

#: ``end_sessions(subject_id, reason) -> sessions ended``: ends every SSO session of a broker
#: subject and revokes the tokens issued in them (``OidcProvider.end_sessions_for_subject``).
EndSessions = Callable[[str, str], int]

_CacheKey = tuple[str, str, str]


class LeaverCheck:
    """An ``AccessGate`` that re-checks directory accounts before asking ``inner``; see the module docstring."""

    def __init__(
        self,
        inner: AccessGate,
        registry: OrganisationRegistry,
        end_sessions: EndSessions,
        *,
        subject_for: Callable[[SubjectRef], str],
        audit: Callable[[AuditEvent], object],
        recheck_seconds: Mapping[str, float] | None = None,
        default_recheck_seconds: float = DEFAULT_CACHE_SECONDS,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        """``recheck_seconds`` maps a source id to its interval (``default_recheck_seconds``
        for sources not named); ``clock`` (monotonic) and ``now`` (wall) exist for tests."""
        self._inner = inner
        self._registry = registry
        self._end_sessions = end_sessions
        self._subject_for = subject_for
        self._audit = audit
        self._recheck = dict(recheck_seconds or {})
        self._default_recheck = default_recheck_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._now = now
        self._lock = threading.Lock()
        self._cache: collections.OrderedDict[_CacheKey, tuple[float, Identity]] = collections.OrderedDict()

    def check(self, identity: Identity, client_id: str, service_name: str) -> AccessGrant:
        """Re-check ``identity`` with its source (cached), then ask the inner gate.

        Raises AccessDenied (leaver: sessions ended; directory unavailable or failing:
        sessions kept), or whatever the inner gate raises.
        """
        source = self._registry.source(identity.authn.source)
        if not isinstance(source, RefreshableSource):
            return self._inner.check(identity, client_id, service_name)
        interval = self._recheck.get(source.id, self._default_recheck)
        age = (self._now() - identity.authn.authenticated_at).total_seconds()
        if 0 <= age < interval:
            return self._inner.check(identity, client_id, service_name)  # the sign-in itself was the check
        key = (identity.subject.issuer, identity.subject.subject, identity.authn.authenticated_at.isoformat())
        current = self._cached(key)
        if current is None:
            current = self._refresh(source, identity, client_id)
            self._remember(key, current, interval)
        return self._inner.check(current, client_id, service_name)

    def forget(self, subject: SubjectRef) -> None:
        """Drop every cached check of ``subject`` (e.g. after an administrator ends its sessions)."""
        with self._lock:
            for key in [k for k in self._cache if (k[0], k[1]) == (subject.issuer, subject.subject)]:
                del self._cache[key]

    # -- steps ---------------------------------------------------------------------------

    def _refresh(self, source: RefreshableSource, identity: Identity, client_id: str) -> Identity:
        try:
            refreshed = source.refresh(identity)
        except FederationError as exc:
            raise self._refused(exc, source, identity, client_id) from None
        organisation = self._registry.get(refreshed.organisation)
        return organisation.enrich(refreshed) if organisation is not None else refreshed

    def _refused(self, exc: FederationError, source: RefreshableSource, identity: Identity, client_id: str) -> AccessDenied:
        """Audit the failed re-check, end the sessions of a leaver; return the AccessDenied to raise."""
        subject_id = self._subject_for(identity.subject)
        details: dict[str, object] = {"source": source.id, "organisation": identity.organisation,
                                      "status": exc.code.value, "reason": exc.reason}
        if exc.code is FederationErrorCode.ACCOUNT_NOT_ACTIVE:
            self.forget(identity.subject)
            ended = self._end_sessions(subject_id, f"leaver: {exc.reason}"[:200])
            details["sessions_ended"] = ended
            self._audit(AuditEvent("leaver_check", "denied", actor=subject_id, client_id=client_id, details=details))
            return AccessDenied(LEAVER_MESSAGE, reasons=("account_not_active",))
        self._audit(AuditEvent("leaver_check", "error", actor=subject_id, client_id=client_id, details=details))
        if exc.code is FederationErrorCode.SOURCE_UNAVAILABLE:
            organisation = self._registry.get(identity.organisation)
            name = organisation.name if organisation is not None else "your organisation"
            return AccessDenied(UNAVAILABLE_MESSAGE.format(organisation=name), reasons=("source_unavailable",))
        return AccessDenied(FAILED_MESSAGE, reasons=(exc.code.value,))

    def _cached(self, key: _CacheKey) -> Identity | None:
        now = self._clock()
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return entry[1]

    def _remember(self, key: _CacheKey, identity: Identity, interval: float) -> None:
        if interval <= 0:
            return
        with self._lock:
            self._cache[key] = (self._clock() + interval, identity)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
