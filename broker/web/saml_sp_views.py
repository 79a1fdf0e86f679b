"""Our SAML SP metadata for each upstream SAML IdP, at a stable URL that is also its entity ID.

``GET /saml/sp/<source_id>`` answers the signed ``EntityDescriptor`` (SAML Metadata §2.3.2,
media type from §7 / RFC 7580 ``application/samlmetadata+xml``) an IdP administrator
imports: entity ID, assertion consumer service, signing and encryption certificates.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from flask import Blueprint, Response, abort

from broker.web.context import services
from federation.errors import FederationError

bp = Blueprint("saml_sp", __name__)
CACHE_SECONDS = 3600


@runtime_checkable
class PublishesSpMetadata(Protocol):
    """A source for which the broker is a SAML service provider."""

    def sp_metadata(self) -> bytes:
        """Return the signed SP metadata. Raises FederationError if it cannot be built now."""
        ...


@bp.route("/saml/sp/<source_id>")
def metadata(source_id: str) -> Response:
    """Answer the SP metadata of ``source_id``; 404 for any other source, 503 while the
    IdP's own metadata is unavailable (ours is built over it)."""
    source = services().registry.source(source_id)
    if not isinstance(source, PublishesSpMetadata):
        abort(404)
    try:
        body = source.sp_metadata()
    except FederationError:
        abort(503)
    response = Response(body, mimetype="application/samlmetadata+xml")
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    return response
