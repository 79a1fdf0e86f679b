"""Helpers for the policy engine tests: people, requests and bundle variants."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from policies.bundle import PolicyBundle
from policies.model import Fact, PersonFacts, Request

NOW = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)
ASSERTED = dt.datetime(2026, 11, 28, 8, 55, tzinfo=dt.UTC)


def person(subject: str = "camden-ad|asmith", source: str = "camden-ad", **facts: Any) -> PersonFacts:
    """Return PersonFacts; every keyword becomes a Fact asserted by ``source`` at ASSERTED.

    ``break_glass`` is passed through as the grant.
    """
    grant = facts.pop("break_glass", None)
    defaults: dict[str, Any] = {"organisation": "camden", "kind": "borough", "assurance": 2}
    values = {**defaults, **facts}
    return PersonFacts(
        subject=subject,
        facts={name: Fact(value=value, source=source, asserted_at=ASSERTED) for name, value in values.items()},
        break_glass=grant,
    )


def camden_social_worker(**overrides: Any) -> PersonFacts:
    """The Camden adult social worker on the discharge team (SCENARIOS persona)."""
    facts: dict[str, Any] = {
        "groups": ("Adult Social Care", "Care Staff"),
        "teams": ("camden-adult-social-care", "camden-hospital-discharge"),
        "job_roles": ("social-worker",),
        "name": "Alex Smith",
        "email": "alex.smith@camden.test",
        "job_title": "Social Worker",
        "department": "Adult Social Care",
    }
    facts.update(overrides)
    return person("camden-ad|asmith", "camden-ad", **facts)


def nhs_person(subject: str = "nhs-cis2|555000000001", **overrides: Any) -> PersonFacts:
    """An NHS consultant (R8000) at a London trust, AAL3, asserted by NHS CIS2."""
    facts: dict[str, Any] = {
        "organisation": "nhs-north-london",
        "kind": "health",
        "assurance": 3,
        "nrbac_roles": ("R8000",),
        "name": "Dr Farah Khan",
        "email": "farah.khan@nhs.test",
        "job_title": "Consultant",
    }
    facts.update(overrides)
    return person(subject, "nhs-cis2", **facts)


def sign_in(who: PersonFacts, service: str, **kwargs: Any) -> Request:
    """Return a sign-in request at NOW."""
    return Request(person=who, action="sign_in", service=service, now=NOW, **kwargs)


def bundle_with(
    base: PolicyBundle,
    *,
    version: str = "2026.11.28-2",
    sources: Mapping[str, str] | None = None,
    drop_policy: str | None = None,
    tests: str | None = None,
) -> PolicyBundle:
    """Return a copy of ``base`` with another version, replaced/extra sources, a policy removed, or other tests."""
    new_sources = dict(base.sources)
    if drop_policy is not None:
        pattern = re.compile(r'@id\("' + re.escape(drop_policy) + r'"\).*?\};', re.DOTALL)
        new_sources = {name: pattern.sub("", text) for name, text in new_sources.items()}
    new_sources.update(sources or {})
    return PolicyBundle(
        name=base.name,
        version=version,
        sources=new_sources,
        tests=base.tests if tests is None else tests,
        description=base.description,
    )
