"""The security officers' console (not built yet).

It will run as its own Flask app on its own port over services handed to it by the broker's
app factory (audit queries, session revocation, the policy store, the break-glass review
queue), declared as small protocols here so that ``broker`` can register it without a cycle.
"""
