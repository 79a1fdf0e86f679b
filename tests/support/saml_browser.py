"""A headless browser for SAML round trips over real HTTP: SP -> broker -> SP.

``SamlBrowser`` is a ``requests.Session`` driven the way a browser without a person would
go: it follows redirects by hand, submits auto-submitting forms (HTTP-POST binding pages
carrying ``SAMLRequest``/``SAMLResponse``, the broker's cookie-bounce form), and fills the
broker's GOV.UK sign-in pages (email, then the source if the broker asks, then password)
only when it was given the answers. Every SAML protocol message it carries is recorded
(binding, destination, decoded XML, RelayState, whether a Redirect-binding signature was
on the URL), so a test can inspect exactly what the SP received.

It never answers a page it does not recognise: ``open`` returns that page, so a test sees
what a user would see (an error page, the SP's JSON page, the broker's signed-out page).
"""

from __future__ import annotations

import base64
import dataclasses
import re
import zlib
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

SAML_FIELDS = ("SAMLRequest", "SAMLResponse")
_AUTOSUBMIT = re.compile(r"\.submit\(\)")


@dataclasses.dataclass(frozen=True)
class SamlMessage:
    """One SAML protocol message carried by the browser.

    ``field`` is ``SAMLRequest`` or ``SAMLResponse``; ``binding`` ``redirect`` or ``post``;
    ``destination`` the URL it was delivered to (without query); ``xml`` the decoded message;
    ``signed_query`` whether a Redirect-binding ``Signature`` and ``SigAlg`` were on the URL
    (``sig_alg`` is the SigAlg value).
    """

    field: str
    binding: str
    destination: str
    xml: bytes
    relay_state: str | None
    signed_query: bool = False
    sig_alg: str | None = None


@dataclasses.dataclass(frozen=True)
class Step:
    """One HTTP exchange: method, URL, status and (for HTML) the page's <title>."""

    method: str
    url: str
    status: int
    title: str | None


def _title(response: requests.Response) -> str | None:
    if "html" not in response.headers.get("Content-Type", ""):
        return None
    match = re.search(r"<title[^>]*>(.*?)</title>", response.text, re.S | re.I)
    return " ".join(match.group(1).split()) if match else None


def first_form(page: str, base_url: str) -> tuple[str, str, dict[str, str], set[str]] | None:
    """Return (absolute action, method, submitted field values, every input name) of the
    first form on ``page``, or None if there is none.
    """
    import lxml.html

    try:
        document = lxml.html.fromstring(page)
    except Exception:  # noqa: BLE001 - not HTML: no form
        return None
    forms = document.forms
    if not forms:
        return None
    form = forms[0]
    names = {element.get("name") for element in form.inputs if element.get("name")}
    return urljoin(base_url, form.get("action") or base_url), (form.method or "GET").upper(), dict(form.form_values()), names


class SamlBrowser:
    """A cookie jar plus the rules above. ``messages`` and ``steps`` record the journey;
    ``passwords_asked`` counts the broker's password pages seen."""

    def __init__(self, *, timeout: float = 20.0) -> None:
        self.session = requests.Session()
        self.timeout = timeout
        self.messages: list[SamlMessage] = []
        self.steps: list[Step] = []
        self.passwords_asked = 0
        self.emails_asked = 0

    # -- recording -------------------------------------------------------------------------------

    def _record_query(self, url: str) -> None:
        query = parse_qs(urlsplit(url).query)
        for field in SAML_FIELDS:
            if field in query:
                raw = base64.b64decode(query[field][0])
                xml = zlib.decompress(raw, -15)  # SAML Bindings §3.4.4.1: DEFLATE, no zlib header
                self.messages.append(SamlMessage(
                    field=field, binding="redirect", destination=url.split("?", 1)[0], xml=xml,
                    relay_state=query.get("RelayState", [None])[0],
                    signed_query="Signature" in query and "SigAlg" in query, sig_alg=query.get("SigAlg", [None])[0],
                ))

    def _record_post(self, action: str, fields: dict[str, str]) -> None:
        for field in SAML_FIELDS:
            if field in fields:
                self.messages.append(SamlMessage(
                    field=field, binding="post", destination=action, xml=base64.b64decode(fields[field]),
                    relay_state=fields.get("RelayState"),
                ))

    def _request(self, method: str, url: str, data: dict[str, str] | None = None) -> requests.Response:
        if method == "GET":
            self._record_query(url)
            response = self.session.get(url, allow_redirects=False, timeout=self.timeout)
        else:
            response = self.session.post(url, data=data, allow_redirects=False, timeout=self.timeout)
        self.steps.append(Step(method, url, response.status_code, _title(response)))
        return response

    # -- driving ---------------------------------------------------------------------------------

    def open(self, url: str, *, email: str | None = None, password: str | None = None,
             source: str | None = None, form_answers: dict[str, str] | None = None,
             stop_before: str | None = None, max_steps: int = 40) -> requests.Response:
        """GET ``url`` and carry on as described in the module docstring; return the first
        response that is neither a redirect nor a page this browser answers. ``form_answers``
        fills any other form that has all of its field names (e.g. another IdP's login form).
        With ``stop_before``, an auto-submitting form whose action starts with it is recorded
        (in ``messages``) but not sent: its page is returned, for a test to alter and send.

        Raises AssertionError after ``max_steps`` exchanges (a loop).
        """
        return self._drive(self._request("GET", url), email=email, password=password, source=source,
                           form_answers=form_answers, stop_before=stop_before, max_steps=max_steps)

    def submit(self, response: requests.Response, extra: dict[str, str] | None = None, **answers: Any) -> requests.Response:
        """Submit the first form of ``response`` (with ``extra`` fields) and carry on like ``open``.

        Raises LookupError if the page has no form.
        """
        form = first_form(response.text, response.url)
        if form is None:
            raise LookupError(f"no form on {response.url}")
        action, method, values, _ = form
        values.update(extra or {})
        self._record_post(action, values)
        return self._drive(self._request(method, action, values), **answers)

    def _drive(self, response: requests.Response, *, email: str | None = None, password: str | None = None,
               source: str | None = None, form_answers: dict[str, str] | None = None,
               stop_before: str | None = None, max_steps: int = 40) -> requests.Response:
        for _ in range(max_steps):
            location = response.headers.get("Location")
            if response.is_redirect and location:
                response = self._request("GET", urljoin(response.url, location))
                continue
            if "html" not in response.headers.get("Content-Type", ""):
                return response
            form = first_form(response.text, response.url)
            if form is None:
                return response
            action, method, values, names = form
            if names & set(SAML_FIELDS) or "_bounced" in names or (
                _AUTOSUBMIT.search(response.text) and method == "POST" and not names & {"email", "password", "source"}
            ):
                self._record_post(action, values)
                if stop_before is not None and action.startswith(stop_before):
                    return response
                response = self._request(method, action, values)
            elif form_answers and set(form_answers) <= names:
                values.update(form_answers)
                response = self._request(method, action, values)
            elif "email" in names and email is not None:
                self.emails_asked += 1
                values["email"] = email
                response = self._request(method, action, values)
            elif "source" in names and source is not None:
                values["source"] = source
                response = self._request(method, action, values)
            elif "password" in names and password is not None:
                self.passwords_asked += 1
                values["password"] = password
                response = self._request(method, action, values)
            else:
                if "password" in names:
                    self.passwords_asked += 1
                return response
        raise AssertionError(f"more than {max_steps} steps: {[s.url for s in self.steps[-6:]]}")

    def click(self, response: requests.Response, link_id: str, **answers: Any) -> requests.Response:
        """Follow the link with id ``link_id`` on ``response``'s page (as a person would click
        it) and carry on like ``open``. Raises LookupError if there is no such link."""
        import lxml.html

        links = lxml.html.fromstring(response.text).xpath("//a[@id=$id]/@href", id=link_id)
        if not links:
            raise LookupError(f"no link #{link_id} on {response.url}")
        return self._drive(self._request("GET", urljoin(response.url, str(links[0]))), **answers)

    def post(self, url: str, fields: dict[str, str]) -> requests.Response:
        """POST ``fields`` to ``url`` (recording SAML fields) and carry on like ``open``."""
        self._record_post(url, fields)
        return self._drive(self._request("POST", url, fields))

    def json(self, url: str) -> dict[str, Any]:
        """GET ``url`` (no SAML, no redirects followed) and return its JSON body.

        Raises AssertionError with the body if it is not JSON.
        """
        response = self._request("GET", url)
        try:
            return dict(response.json())
        except ValueError:
            raise AssertionError(f"{url} answered {response.status_code} without JSON: {response.text[:600]}") from None

    def received(self, field: str, destination_prefix: str) -> list[SamlMessage]:
        """Return the ``field`` messages delivered to URLs starting with ``destination_prefix``."""
        return [m for m in self.messages if m.field == field and m.destination.startswith(destination_prefix)]
