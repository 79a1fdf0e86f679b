"""Secret references: ``{env: NAME}`` or ``{file: path}`` in YAML, never the secret itself."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator


class SecretUnavailable(Exception):
    """Raised when a secret cannot be read; the message names the reference, never the value."""


class SecretRef(BaseModel):
    """Where a secret lives: exactly one of ``env`` (a variable name) or ``file`` (a path).

    The loader resolves every reference once; ``reveal()`` returns the value. The value
    never appears in ``repr``, ``str`` or a model dump.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: Path | None = None
    _value: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file' (a secret is never written inline)")
        return self

    def describe(self) -> str:
        """Return where the secret comes from, for messages (never the value)."""
        return f"environment variable {self.env}" if self.env else f"file {self.file}"

    def resolve(self, base_dir: Path) -> None:
        """Read the secret now. Raises SecretUnavailable if unset, missing, unreadable or empty."""
        if self.env is not None:
            value = os.environ.get(self.env, "").strip()
            if not value:
                raise SecretUnavailable(f"environment variable {self.env} is not set")
        else:
            path = self.file if self.file.is_absolute() else base_dir / self.file
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SecretUnavailable(f"cannot read secret file {path}: {exc.strerror}") from None
            if not value:
                raise SecretUnavailable(f"secret file {path} is empty")
        self._value = value

    def reveal(self) -> str:
        """Return the resolved secret. Raises SecretUnavailable if it was never resolved."""
        if self._value is None:
            raise SecretUnavailable(f"secret from {self.describe()} has not been resolved")
        return self._value

    def __repr__(self) -> str:
        return f"SecretRef({self.describe()})"

    __str__ = __repr__
