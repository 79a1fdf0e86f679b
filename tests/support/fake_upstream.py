"""A fake upstream identity provider (a CallbackSource) for broker-side tests."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Mapping
from typing import Any

from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel, Attribute, AuthnContext, Identity, SubjectRef
from federation.sources import UpstreamRequest, UpstreamStart


class FakeUpstream:
    """An upstream that 'authenticates' whoever returns with the code it handed out."""

    id = "fake-cis2"
    organisation = "nhs"
    display_name = "NHS smartcard (test)"

    def __init__(self) -> None:
        self.requests: list[UpstreamRequest] = []

    def start(self, request: UpstreamRequest) -> UpstreamStart:
        self.requests.append(request)
        code = secrets.token_urlsafe(8)
        return UpstreamStart(url=f"https://cis2.test/authorize?code={code}", state={"code": code})

    def finish(self, params: Mapping[str, str], state: Mapping[str, Any], callback_url: str) -> Identity:
        if params.get("code") != state["code"]:
            raise FederationError(FederationErrorCode.INVALID_TOKEN, "code mismatch")
        now = dt.datetime.now(dt.UTC)
        level = AssuranceLevel(int(params.get("aal", "3")))
        return Identity(
            subject=SubjectRef("https://cis2.test:443/", "nhs-555"),
            organisation="nhs",
            attributes={"name": Attribute("name", "Dr Ada Consultant", "upstream:fake-cis2", now)},
            groups=(),
            roles=("S0080:G0450:R8000",),
            authn=AuthnContext(methods=("sc",), assurance=level, authenticated_at=now, source=self.id),
        )


def install_fake_upstream(services) -> FakeUpstream:  # type: ignore[no-untyped-def]
    """Make the fake the NHS organisation's only source in ``services``' registry; return it."""
    fake = FakeUpstream()
    nhs = services.registry.get("nhs")
    install_source(services, "nhs", fake)
    return fake


def install_source(services, organisation_id: str, source) -> None:  # type: ignore[no-untyped-def]
    """Make ``source`` the only source of ``organisation_id`` in ``services``' live registry."""
    organisations = dict(services.registry.organisations)
    organisations[organisation_id] = dataclasses.replace(organisations[organisation_id], sources=(source,))
    services.registry.replace(organisations.values())
