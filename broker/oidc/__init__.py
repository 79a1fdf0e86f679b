"""The OpenID Connect provider's core: request validation, codes, tokens, claims.

Nothing here imports Flask: ``broker.web.oidc_views`` parses HTTP into plain values, calls
``OidcProvider`` and renders what it returns.
"""
