"""Delivery of back-channel logout tokens (OIDC Back-Channel Logout 1.0 §2.5, §2.8).

Each logout token is POSTed form-encoded (``logout_token=…``) to the client's registered
``backchannel_logout_uri``; a 200 or 204 is success. Failures are retried a bounded
number of times with growing pauses, in a small pool of background threads so the
person's sign-out never waits on an application; each outcome is audited (never the token).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from broker.audit import AuditEvent

ATTEMPTS = 3
BACKOFF_SECONDS = (0.5, 2.0)
TIMEOUT_SECONDS = 5.0

Poster = Callable[[str, str], int]


def post_logout_token(url: str, logout_token: str) -> int:
    """POST ``logout_token`` to ``url``; return the HTTP status (0 if unreachable). No redirects followed."""
    body = urllib.parse.urlencode({"logout_token": logout_token}).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded", "Cache-Control": "no-store"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


class BackchannelSender:
    """Sends logout tokens in the background with bounded retries; ``drain`` waits for them (tests, CLI)."""

    def __init__(self, audit: Callable[[AuditEvent], object], poster: Poster = post_logout_token, *,
                 attempts: int = ATTEMPTS, backoff: tuple[float, ...] = BACKOFF_SECONDS, workers: int = 4) -> None:
        self._audit = audit
        self._post = poster
        self._attempts = attempts
        self._backoff = backoff
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backchannel")
        self._pending: set[concurrent.futures.Future[bool]] = set()
        self._lock = threading.Lock()

    def send(self, *, client_id: str, url: str, logout_token: str, sid: str | None, reason: str) -> None:
        """Queue one delivery; returns at once."""
        future = self._pool.submit(self._deliver, client_id, url, logout_token, sid, reason)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued delivery has finished (or ``timeout`` passes)."""
        with self._lock:
            pending = list(self._pending)
        concurrent.futures.wait(pending, timeout=timeout)

    def _forget(self, future: concurrent.futures.Future[bool]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _deliver(self, client_id: str, url: str, logout_token: str, sid: str | None, reason: str) -> bool:
        status = 0
        for attempt in range(1, self._attempts + 1):
            status = self._post(url, logout_token)
            if status in (200, 204):
                self._audit(AuditEvent("backchannel_logout", "success", client_id=client_id,
                                       details={"sid": sid, "reason": reason, "attempts": attempt, "status": status}))
                return True
            if 400 <= status < 500 and status not in (408, 429):
                break  # the application refused the token: retrying will not help
            if attempt < self._attempts:
                time.sleep(self._backoff[min(attempt - 1, len(self._backoff) - 1)])
        self._audit(AuditEvent("backchannel_logout", "failure", client_id=client_id,
                               details={"sid": sid, "reason": reason, "attempts": attempt, "status": status}))
        return False
