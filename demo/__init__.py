"""The London demo: the Hospital Discharge Hub as a separate OIDC application, and the runner."""
