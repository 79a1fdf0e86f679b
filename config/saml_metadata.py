"""Where a SAML peer's metadata comes from (SAML Metadata §4: publication by URL or as a file),
shared by upstream IdPs (``config/saml_source.py``) and the broker's SPs (``config/saml_sp.py``).

Metadata fetched from a URL must be signed, by the certificate named in the subclass's
``CERTIFICATE_FIELD`` (``signing_certificate`` for an IdP, ``signer_certificate`` for an SP:
both names are kept as the settings spell them).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MetadataOriginConfig(BaseModel):
    """A URL (fetched, and re-fetched every ``refresh_seconds``) or a local file; exactly one."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    CERTIFICATE_FIELD: ClassVar[str]

    url: str | None = Field(default=None, description="fetched at start-up (or registration) and every refresh_seconds")
    file: Path | None = Field(default=None, description="a local copy")
    refresh_seconds: int = Field(default=3600, ge=60, le=86400)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @model_validator(mode="after")
    def _one_origin(self) -> MetadataOriginConfig:
        """Raises ValueError unless exactly one of url/file is given, a url is absolute http(s)
        and metadata from a url names the certificate that must have signed it."""
        if (self.url is None) == (self.file is None):
            raise ValueError("give exactly one of 'url' or 'file'")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in {"https", "http"} or not parts.netloc:
                raise ValueError("url must be an absolute https:// URL")
            if getattr(self, self.CERTIFICATE_FIELD) is None:
                raise ValueError(f"metadata fetched from a url must be signed: give {self.CERTIFICATE_FIELD}")
        return self
