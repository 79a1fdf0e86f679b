"""Drive the broker's sign-in pages over HTTP as a browser would (cookies, CSRF tokens, redirects)."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import requests

_CSRF = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')


def csrf_token(html: str) -> str:
    """Return the CSRF token of the first form in ``html``. Raises LookupError if there is none."""
    match = _CSRF.search(html)
    if not match:
        raise LookupError("no CSRF token on the page")
    return match.group(1)


def sign_in(session: requests.Session, authorize_url: str, email: str, password: str, *, stop_prefix: str) -> str:
    """Follow ``authorize_url`` through the sign-in pages; return the first redirect starting with ``stop_prefix``.

    Raises AssertionError (with the page) if sign-in does not reach the application.
    """
    response = session.get(authorize_url, allow_redirects=False, timeout=10)
    url = authorize_url
    for _ in range(10):
        location = response.headers.get("Location")
        if response.is_redirect and location:
            url = urljoin(url, location)
            if url.startswith(stop_prefix):
                return url
            response = session.get(url, allow_redirects=False, timeout=10)
            continue
        page = response.text
        if 'name="email"' in page:
            response = session.post(url, data={"csrf_token": csrf_token(page), "email": email}, allow_redirects=False, timeout=10)
        elif 'name="password"' in page:
            response = session.post(url, data={"csrf_token": csrf_token(page), "password": password}, allow_redirects=False, timeout=10)
        else:
            raise AssertionError(f"unexpected page {url} ({response.status_code}): {page[:500]}")
    raise AssertionError("too many steps without reaching the application")
