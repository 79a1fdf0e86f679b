"""Our checks of a response pysaml2 has verified: the Web Browser SSO profile, applied strictly.

pysaml2 checks signatures and most conditions, leniently in places (an absent Destination,
InResponseTo or AudienceRestriction passes). Here each is required (SAML 2.0 Profiles
§4.1.4.2-4.1.4.3, Bindings §3.5.5.2, Core §2.5.1.4):

- ``Destination`` present and equal to our ACS; ``Issuer`` (when on the Response) and the
  assertion's ``Issuer`` equal to the IdP's entity ID;
- exactly one assertion; the response or the assertion signed as configured;
- ``InResponseTo`` on the Response and on every bearer ``SubjectConfirmationData`` equal to
  the request this browser started (absent only for an allowed unsolicited response);
- a bearer confirmation whose ``Recipient`` is our ACS and whose ``NotOnOrAfter`` is future;
- ``Conditions`` with ``NotOnOrAfter`` and an ``AudienceRestriction`` naming us;
- exactly one ``AuthnStatement``.

Every failure raises FederationError(INVALID_TOKEN) with a reason for the audit log that
names the rule, never a value from the assertion.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from federation.errors import FederationError, FederationErrorCode
from federation.upstream_saml.xmlsecurity import DocumentFacts

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
ENTITY_FORMAT = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"


@dataclasses.dataclass(frozen=True, slots=True)
class Expectations:
    """What this response must match."""

    idp_entity_id: str
    sp_entity_id: str
    acs_url: str
    request_id: str | None
    allow_unsolicited: bool
    signed: str
    want_encrypted: bool
    clock_skew: dt.timedelta


@dataclasses.dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    """What the broker uses of one verified assertion."""

    assertion_id: str
    name_id: str | None
    name_id_format: str | None
    attributes: dict[str, tuple[str, ...]]
    class_ref: str | None
    authn_instant: dt.datetime
    issued_at: dt.datetime
    replay_until: dt.datetime
    name_qualifier: str | None = None
    sp_name_qualifier: str | None = None
    session_index: str | None = None  # AuthnStatement SessionIndex (SAML Core §2.7.2): for logout
    session_not_on_or_after: dt.datetime | None = None  # when the IdP's session behind it ends


def _refuse(reason: str) -> FederationError:
    return FederationError(FederationErrorCode.INVALID_TOKEN, reason)


def _time(value: str | None, what: str) -> dt.datetime:
    if not value:
        raise _refuse(f"{what} is missing")
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise _refuse(f"{what} is not a dateTime") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _text(element: Any) -> str | None:
    text = getattr(element, "text", None)
    return text.strip() if isinstance(text, str) else None


def check_response(response: Any, facts: DocumentFacts, expect: Expectations, now: dt.datetime) -> VerifiedAssertion:
    """Apply the profile rules to pysaml2's verified ``AuthnResponse``; return the assertion's facts."""
    message = response.response
    if message.destination != expect.acs_url:
        raise _refuse("Destination is missing or is not our assertion consumer service")
    issuer = message.issuer
    if issuer is not None and (_text(issuer) != expect.idp_entity_id or issuer.format not in (None, ENTITY_FORMAT)):
        raise _refuse("the Response's Issuer is not the configured IdP")
    status = message.status.status_code.value if message.status and message.status.status_code else None
    if status != SUCCESS:
        raise _refuse("the IdP did not answer Success")
    _check_in_response_to(message.in_response_to, expect, "the Response's InResponseTo")
    assertions = list(getattr(response, "assertions", []) or [])
    if len(assertions) != 1 or response.assertion is not assertions[0]:
        raise _refuse("the response does not carry exactly one assertion")
    assertion = assertions[0]
    if _text(assertion.issuer) != expect.idp_entity_id:
        raise _refuse("the assertion's Issuer is not the configured IdP")
    _check_signed(message.id, assertion, facts, expect.signed)
    if expect.want_encrypted and not facts.encrypted:
        raise _refuse("the assertion was not encrypted")
    replay_until = _check_conditions(assertion, expect, now)
    confirmed_until = _check_bearer(assertion, expect, now)
    statements = list(assertion.authn_statement or [])
    if len(statements) != 1:
        raise _refuse("the assertion does not carry exactly one AuthnStatement")
    context = statements[0].authn_context
    class_ref = _text(context.authn_context_class_ref) if context is not None else None
    name_id = assertion.subject.name_id if assertion.subject is not None else None
    return VerifiedAssertion(
        assertion_id=str(assertion.id),
        name_id=_text(name_id),
        name_id_format=getattr(name_id, "format", None),
        attributes=_attributes(assertion),
        class_ref=class_ref,
        authn_instant=_time(statements[0].authn_instant, "AuthnInstant"),
        issued_at=_time(assertion.issue_instant, "the assertion's IssueInstant"),
        replay_until=max(replay_until, confirmed_until) + expect.clock_skew,
        name_qualifier=getattr(name_id, "name_qualifier", None),
        sp_name_qualifier=getattr(name_id, "sp_name_qualifier", None),
        session_index=statements[0].session_index or None,
        session_not_on_or_after=(_time(statements[0].session_not_on_or_after, "SessionNotOnOrAfter")
                                 if statements[0].session_not_on_or_after else None),
    )


def _check_in_response_to(value: str | None, expect: Expectations, what: str) -> None:
    if expect.request_id is None:
        if not expect.allow_unsolicited:
            raise _refuse("unsolicited response (no sign-in was started for it)")
        if value:
            raise _refuse(f"{what} names a request this browser did not send")
        return
    if value != expect.request_id:
        raise _refuse(f"{what} is not the request this browser sent")


def _check_signed(response_id: str, assertion: Any, facts: DocumentFacts, signed: str) -> None:
    response_signed = response_id in facts.signed_ids
    assertion_signed = assertion.signature is not None
    ok = {
        "assertion": assertion_signed,
        "response": response_signed,
        "both": assertion_signed and response_signed,
        "assertion_or_response": assertion_signed or response_signed,
    }.get(signed, False)
    if not ok:
        raise _refuse(f"the response is not signed as required ({signed})")


def _check_conditions(assertion: Any, expect: Expectations, now: dt.datetime) -> dt.datetime:
    conditions = assertion.conditions
    if conditions is None:
        raise _refuse("the assertion has no Conditions")
    not_on_or_after = _time(conditions.not_on_or_after, "Conditions NotOnOrAfter")
    if now >= not_on_or_after + expect.clock_skew:
        raise _refuse("the assertion has expired (Conditions NotOnOrAfter)")
    if conditions.not_before and now + expect.clock_skew < _time(conditions.not_before, "Conditions NotBefore"):
        raise _refuse("the assertion is not yet valid (Conditions NotBefore)")
    restrictions = list(conditions.audience_restriction or [])
    if not restrictions or not all(
        any(_text(a) == expect.sp_entity_id for a in (r.audience or [])) for r in restrictions
    ):
        raise _refuse("the assertion's AudienceRestriction does not name us")
    return not_on_or_after


def _check_bearer(assertion: Any, expect: Expectations, now: dt.datetime) -> dt.datetime:
    subject = assertion.subject
    if subject is None:
        raise _refuse("the assertion has no Subject")
    bearers = [c for c in subject.subject_confirmation or [] if c.method == BEARER]
    if not bearers:
        raise _refuse("the assertion has no bearer SubjectConfirmation")
    latest = None
    for confirmation in bearers:
        data = confirmation.subject_confirmation_data
        if data is None or data.recipient != expect.acs_url:
            raise _refuse("the bearer confirmation's Recipient is not our assertion consumer service")
        until = _time(data.not_on_or_after, "SubjectConfirmationData NotOnOrAfter")
        if now >= until + expect.clock_skew:
            raise _refuse("the bearer confirmation has expired")
        _check_in_response_to(data.in_response_to, expect, "the bearer confirmation's InResponseTo")
        latest = until if latest is None else max(latest, until)
    return latest if latest is not None else now


def _attributes(assertion: Any) -> dict[str, tuple[str, ...]]:
    values: dict[str, list[str]] = {}
    for statement in assertion.attribute_statement or []:
        for attribute in statement.attribute or []:
            texts = [(_text(v) or "") for v in attribute.attribute_value or []]
            values.setdefault(str(attribute.name), []).extend(t for t in texts if t)
    return {name: tuple(texts) for name, texts in values.items()}
