"""Upstream SAML 2.0 identity providers (ADFS, Entra ID, SimpleSAMLphp ...) through pysaml2 as our SP.

Modules: ``xmlsecurity`` (the only place XML signing and encryption are configured),
``keys`` (the SP's key pairs), ``metadata`` (the IdP's, verified and refreshed), ``sp``
(pysaml2), ``profile`` (our strict Web Browser SSO checks), ``mapping`` (to an Identity),
``source`` (the CallbackSource), ``build`` (from configuration), ``redirect`` (the HTTP-Redirect
binding codec, shared with the broker's IdP; its query signature is signed and verified in ``xmlsecurity``).
"""

from federation.upstream_saml.build import build_saml_source
from federation.upstream_saml.source import ReplayCache, SamlSource

__all__ = ["ReplayCache", "SamlSource", "build_saml_source"]
