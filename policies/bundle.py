"""Policy bundles: load from disk, compile (parse and validate once), serialise.

A bundle is a directory::

    bundle.yaml     name, version, description
    *.cedar         policies; every policy carries a unique @id("...")
    tests.yaml      its test cases (see ``policies.testcases``)

``compile_bundle`` parses and validates a bundle against the schema once and returns a
:class:`CompiledBundle` the engine evaluates many times. An invalid bundle is refused
with every problem listed, never the first one only.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import cedarpy
import yaml

from policies.errors import PolicyError, PolicyErrorCode
from policies.references import attribute_paths
from policies.schema import london_schema
from policies.testcases import TestSuite, parse_test_suite

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_POLICY_ID = re.compile(r"^[a-z0-9][a-z0-9/_.-]{0,127}$")
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.cedar$")
TESTS_FILE = "tests.yaml"
META_FILE = "bundle.yaml"


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyBundle:
    """The source form of a bundle: what is proposed, stored and diffed."""

    name: str
    version: str
    sources: Mapping[str, str]
    tests: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    @property
    def label(self) -> str:
        """``name@version``, the revision named in every decision log entry."""
        return f"{self.name}@{self.version}"

    def with_version(self, version: str) -> PolicyBundle:
        """Return a copy of this bundle carrying another version string."""
        return dataclasses.replace(self, version=version)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict; ``from_json`` reverses it exactly."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "sources": dict(self.sources),
            "tests": self.tests,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PolicyBundle:
        """Rebuild a bundle from ``to_json`` output. Raises PolicyError(BUNDLE_INVALID) if malformed."""
        try:
            sources = data["sources"]
            if not isinstance(sources, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in sources.items()
            ):
                raise TypeError("sources must map file names to text")
            return cls(
                name=str(data["name"]),
                version=str(data["version"]),
                sources=sources,
                tests=str(data.get("tests", "")),
                description=str(data.get("description", "")),
            )
        except (KeyError, TypeError) as error:
            raise PolicyError(PolicyErrorCode.BUNDLE_INVALID, f"malformed bundle document: {error}") from error


def load_bundle(directory: str | Path) -> PolicyBundle:
    """Read a bundle directory. Returns the (uncompiled) bundle.

    Raises PolicyError(BUNDLE_INVALID) if bundle.yaml is missing or malformed or a file
    cannot be read.
    """
    root = Path(directory)
    try:
        meta = yaml.safe_load((root / META_FILE).read_text(encoding="utf-8"))
        sources = {p.name: p.read_text(encoding="utf-8") for p in sorted(root.glob("*.cedar"))}
        tests_path = root / TESTS_FILE
        tests = tests_path.read_text(encoding="utf-8") if tests_path.exists() else ""
    except (OSError, yaml.YAMLError) as error:
        raise PolicyError(PolicyErrorCode.BUNDLE_INVALID, f"cannot read bundle {root}: {error}") from error
    if not isinstance(meta, Mapping) or "name" not in meta or "version" not in meta:
        raise PolicyError(PolicyErrorCode.BUNDLE_INVALID, f"{root / META_FILE}: needs name and version")
    return PolicyBundle(
        name=str(meta["name"]),
        version=str(meta["version"]),
        sources=sources,
        tests=tests,
        description=str(meta.get("description", "")),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """One parsed and validated policy: its id, effect, canonical text and what it reads."""

    id: str
    effect: str
    text: str
    source: str
    reads: tuple[str, ...]
    est: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class CompiledBundle:
    """A bundle parsed and validated once; hand it to ``PolicyEngine`` to evaluate."""

    bundle: PolicyBundle
    policies: Mapping[str, CompiledPolicy]
    policy_set: cedarpy.PolicySet
    schema: cedarpy.Schema
    tests: TestSuite

    @property
    def label(self) -> str:
        """``name@version`` of the bundle."""
        return self.bundle.label


def split_policies(text: str, *, keep_tail: bool = False) -> list[str]:
    """Return the policies of a Cedar source text one by one, comments removed.

    Cedar ends every policy with ``;`` and has no ``;`` inside expressions, so the
    text splits at each ``;`` outside string literals and ``//`` comments. Text after
    the last ``;`` (a policy missing its end) is returned as a last piece only with
    ``keep_tail``. Never raises.
    """
    pieces: list[str] = []
    current: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            current.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif char == ";":
            current.append(";")
            pieces.append("".join(current).strip())
            current = []
            i += 1
        else:
            current.append(char)
            i += 1
    tail = "".join(current).strip()
    if keep_tail and tail:
        pieces.append(tail)
    return pieces


def canonical_policy_text(source: str | None, est: Mapping[str, Any]) -> str:
    """Return one policy's text in Cedar's canonical format (for diffs and the console).

    ``source`` is the policy's own text when known (kept as written, reformatted);
    otherwise the text is rendered from its JSON form. Raises ValueError if Cedar
    cannot format or render it.
    """
    if source is None:
        document = {"staticPolicies": {"policy0": est}, "templates": {}, "templateLinks": []}
        source = cedarpy.policies_from_json_str(json.dumps(document))
    return cedarpy.format_policies(source).strip()


def compile_bundle(bundle: PolicyBundle, schema: cedarpy.Schema | None = None) -> CompiledBundle:
    """Parse and validate ``bundle`` against ``schema`` (default: the London schema).

    Returns the CompiledBundle. Raises PolicyError(BUNDLE_INVALID) whose ``problems``
    list every problem: parse errors (per file), missing, malformed or duplicate
    ``@id``s, templates, schema validation errors (per policy) and test-file problems.
    """
    schema = schema if schema is not None else london_schema()
    problems: list[str] = []
    if not isinstance(bundle.name, str) or not _NAME.match(bundle.name):
        problems.append(f"name: {bundle.name!r} must match [a-z][a-z0-9_-]*")
    if not isinstance(bundle.version, str) or not _VERSION.match(bundle.version):
        problems.append(f"version: {bundle.version!r} must be 1-64 characters of [A-Za-z0-9._+-]")
    if not bundle.sources:
        problems.append("sources: a bundle needs at least one .cedar file")
    policies: dict[str, CompiledPolicy] = {}
    parsed_all = True
    for source_name in sorted(bundle.sources):
        text = bundle.sources[source_name]
        if not _SOURCE_NAME.match(source_name):
            problems.append(f"{source_name}: file names must match [A-Za-z0-9_-]+.cedar")
        parsed, parsable, whole = _parse_source(source_name, text, problems)
        if not whole:
            parsed_all = False
            parsable = "\n".join(piece for _, piece in parsed if piece)
        for est, piece in parsed:
            policy_id = _policy_id(source_name, est, problems)
            if policy_id is None:
                continue
            if policy_id in policies:
                problems.append(
                    f"{source_name}: @id({policy_id!r}) is also used in {policies[policy_id].source}"
                )
                continue
            try:
                canonical = canonical_policy_text(piece, est)
            except ValueError as error:
                problems.append(f"{source_name}: [{policy_id}] cannot be rendered: {error}")
                continue
            policies[policy_id] = CompiledPolicy(
                id=policy_id,
                effect=str(est.get("effect")),
                text=canonical,
                source=source_name,
                reads=attribute_paths(est),
                est=MappingProxyType(dict(est)),
            )
        if parsable.strip():
            _validate_source(source_name, parsable, schema, problems)
    suite, test_problems = parse_test_suite(bundle.tests)
    problems.extend(test_problems)
    policy_set = None
    if parsed_all and bundle.sources:
        try:
            policy_set = cedarpy.PolicySet.from_str("\n".join(bundle.sources[n] for n in sorted(bundle.sources)))
        except ValueError as error:
            problems.append(f"bundle: the combined policy set does not parse: {error}")
    if problems or policy_set is None or suite is None:
        raise PolicyError(
            PolicyErrorCode.BUNDLE_INVALID,
            f"bundle {bundle.label} refused: {len(problems)} problem(s)",
            problems or ["bundle: nothing to compile"],
        )
    return CompiledBundle(
        bundle=bundle,
        policies=MappingProxyType(policies),
        policy_set=policy_set,
        schema=schema,
        tests=suite,
    )


def _parse_source(
    source_name: str, text: str, problems: list[str]
) -> tuple[list[tuple[Mapping[str, Any], str | None]], str, bool]:
    """Parse one file. Returns (policies, parsable text, whole file parsed?).

    ``policies`` pairs each policy's JSON form with its own source text (None when the
    file cannot be split reliably). When the file does not parse, each policy in it is
    parsed on its own so that every broken policy is reported, not only the first, and
    the ones that do parse are still checked and validated.
    """
    try:
        document = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError:
        return _parse_pieces(source_name, text, problems), "", False
    if document.get("templates"):
        problems.append(f"{source_name}: templates (?principal / ?resource slots) are not allowed in bundles")
    static = document.get("staticPolicies", {})
    ordered = [est for _, est in sorted(static.items(), key=lambda item: _position(item[0]))]
    if not ordered and not document.get("templates"):
        problems.append(f"{source_name}: contains no policies")
    pieces: list[str | None] = list(split_policies(text))
    if len(pieces) != len(ordered):
        pieces = [None] * len(ordered)
    return list(zip(ordered, pieces, strict=True)), text, True


_POSITIONAL = re.compile(r"^for policy `policy\d+`, ")
_ID_HINT = re.compile(r'@id\(\s*"([^"]*)"\s*\)')


def _parse_pieces(
    source_name: str, text: str, problems: list[str]
) -> list[tuple[Mapping[str, Any], str | None]]:
    good: list[tuple[Mapping[str, Any], str | None]] = []
    pieces = split_policies(text, keep_tail=True)
    for number, piece in enumerate(pieces, start=1):
        if not piece:
            continue
        hint = _ID_HINT.search(piece)
        label = f"policy #{number}" + (f" ({hint.group(1)})" if hint else "")
        try:
            document = json.loads(cedarpy.policies_to_json_str(piece))
        except ValueError as error:
            problems.append(f"{source_name}: {label} does not parse: {error}")
            continue
        for est in document.get("staticPolicies", {}).values():
            good.append((est, piece))
        if document.get("templates"):
            problems.append(f"{source_name}: templates (?principal / ?resource slots) are not allowed in bundles")
    return good


def _position(cedar_id: str) -> int:
    digits = cedar_id.removeprefix("policy")
    return int(digits) if digits.isdigit() else 0


def _policy_id(source_name: str, est: Mapping[str, Any], problems: list[str]) -> str | None:
    annotations = est.get("annotations") or {}
    policy_id = annotations.get("id")
    if policy_id is None:
        problems.append(f"{source_name}: a policy has no @id(\"...\") annotation")
        return None
    if not isinstance(policy_id, str) or not _POLICY_ID.match(policy_id):
        problems.append(f"{source_name}: @id({policy_id!r}) must match [a-z0-9][a-z0-9/_.-]*")
        return None
    return policy_id


def _validate_source(source_name: str, text: str, schema: cedarpy.Schema, problems: list[str]) -> None:
    try:
        result = cedarpy.validate_policies(text, schema)
    except ValueError as error:
        problems.append(f"{source_name}: cannot be validated: {error}")
        return
    if result.validation_passed:
        return
    names = result.id_annotations_by_policy_id
    for error in result.errors:
        if error.error.startswith("Policy parse error"):
            continue  # already reported by _parse_source
        where = names.get(error.policy_id, error.policy_id) if error.policy_id else ""
        message = _POSITIONAL.sub("", error.error)
        problems.append(f"{source_name}: [{where}] {message}" if where else f"{source_name}: {message}")
