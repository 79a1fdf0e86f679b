"""Upstream OpenID Connect identity providers (generic OIDC, Entra ID) and the NHS CIS2 profile.

Modules, each small: ``http`` (bounded requests, no redirects), ``discovery`` (metadata,
exact issuer), ``keys`` (the upstream's JWKS by URL), ``client_auth`` (private_key_jwt with
the broker's keys, client secrets), ``tokens`` (ID token validation), ``claims`` (userinfo
merge, required/optional/ignored), ``mapping`` (generic profile → Identity), ``cis2``
(NHS CIS2 profile), ``source`` (the CallbackSource), ``build`` (from configuration).
"""
