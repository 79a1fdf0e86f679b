"""The Cedar schema of the London domain, parsed once per process."""

from __future__ import annotations

import functools
from pathlib import Path

import cedarpy

from policies.errors import PolicyError, PolicyErrorCode

SCHEMA_PATH = Path(__file__).parent / "schema" / "london.cedarschema"

#: Cedar entity and action types the engine builds (must match the schema file).
PERSON = "Person"
ORGANISATION = "Organisation"
TEAM = "Team"
FUNCTION = "Function"
SERVICE = "Service"
RECORD = "Record"
ACTION = "Action"


def schema_text(path: Path = SCHEMA_PATH) -> str:
    """Return the schema source text. Raises PolicyError(SCHEMA_INVALID) if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(PolicyErrorCode.SCHEMA_INVALID, f"cannot read schema {path}: {error}") from error


def parse_schema(text: str) -> cedarpy.Schema:
    """Return the parsed Cedar schema handle. Raises PolicyError(SCHEMA_INVALID) if it does not parse."""
    try:
        return cedarpy.Schema.from_str(text)
    except ValueError as error:
        raise PolicyError(PolicyErrorCode.SCHEMA_INVALID, "the schema does not parse", [str(error)]) from error


@functools.lru_cache(maxsize=1)
def london_schema() -> cedarpy.Schema:
    """Return the London schema, parsed once and shared (the handle is immutable)."""
    return parse_schema(schema_text())
