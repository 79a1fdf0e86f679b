"""The trust fabric: the canonical Identity, identity sources, the organisation registry, keys.

Sources (directories now; upstream OIDC and SAML identity providers later) are mapped into
one ``Identity``. Nothing here imports Flask; ``broker`` drives it.
"""
