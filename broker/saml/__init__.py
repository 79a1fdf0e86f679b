"""The broker's SAML 2.0 identity provider (no Flask): SP registry, request validation,
NameIDs, attribute release, assertion issuing (``issuing``) and single logout."""
