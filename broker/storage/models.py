"""The broker's tables (one metadata for the whole application)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from broker.storage.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class SigningKeyRow(Base):
    """A signing key, its private half encrypted under the master key."""

    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))  # next | current | previous | retired
    encrypted_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    activated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ClientRow(Base):
    """A registered OIDC application; the secret is kept only as a keyed hash."""

    __tablename__ = "clients"
    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    signing_alg: Mapped[str | None] = mapped_column(String(8), nullable=True)
    origin: Mapped[str] = mapped_column(String(16))  # config | cli
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # OIDC registration metadata (OIDC Registration §2, RFC 7591 §2); see config.schema.ApplicationConfig.
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32), default="client_secret_basic")
    token_endpoint_auth_signing_alg: Mapped[str | None] = mapped_column(String(8), nullable=True)
    jwks: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    jwks_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["authorization_code", "refresh_token"])
    subject_type: Mapped[str] = mapped_column(String(16), default="public")
    sector_identifier: Mapped[str | None] = mapped_column(String(255), nullable=True)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    frontchannel_logout_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    allowed_audiences: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Added with dynamic registration (RFC 7591/7592); see config.client_metadata.ClientMetadata.
    backchannel_logout_session_required: Mapped[bool] = mapped_column(Boolean, default=False)
    frontchannel_logout_session_required: Mapped[bool] = mapped_column(Boolean, default=False)
    contacts: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope: Mapped[str | None] = mapped_column(Text, nullable=True)
    sector_identifier_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    organisation: Mapped[str | None] = mapped_column(String(64), nullable=True)  # who registered it (DCR token / CLI)
    registration_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # RFC 7592 §1, keyed hash
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class InitialAccessTokenRow(Base):
    """An initial access token for dynamic registration (RFC 7591 §3), kept only as a keyed hash."""

    __tablename__ = "initial_access_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public handle, for listing and revoking
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    organisation: Mapped[str | None] = mapped_column(String(64), nullable=True)
    description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    max_uses: Mapped[int] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BackchannelOutboxRow(Base):
    """A back-channel logout token to deliver (OIDC Back-Channel Logout 1.0 §2.5), written in the
    transaction that ends the session; claimed by one worker at a time, retried with backoff."""

    __tablename__ = "backchannel_outbox"
    __table_args__ = (Index("ix_backchannel_outbox_state_due", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sid: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(Text)
    public_subject: Mapped[str] = mapped_column(String(255))
    alg: Mapped[str] = mapped_column(String(8))
    jti: Mapped[str] = mapped_column(String(64), unique=True)  # one per delivery, the same on every retry
    reason: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SubjectRow(Base):
    """The broker's own subject for one (issuer, subject) pair of a source."""

    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_subjects_issuer_subject"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class SsoSessionRow(Base):
    """A browser's single sign-on session; the cookie value is stored only as a keyed hash."""

    __tablename__ = "sso_sessions"
    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    cookie_hash: Mapped[str] = mapped_column(String(64), unique=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    identity: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)


class IssuedTokenRow(Base):
    """A token the broker issued, so it can be revoked (code replay, logout, leavers)."""

    __tablename__ = "issued_tokens"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    client_id: Mapped[str] = mapped_column(String(128), index=True)
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    sid: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    code_hash: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    scope: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    family_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)  # refresh token family


class RefreshTokenRow(Base):
    """A refresh token, kept only as its keyed hash; rotated on use, revoked by family (RFC 9700 §4.14.2)."""

    __tablename__ = "refresh_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(128), index=True)
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    sid: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    scope: Mapped[str] = mapped_column(Text)
    grant: Mapped[dict] = mapped_column(JSON)  # auth_time, acr, amr, audience: what a refresh re-issues
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SessionClientRow(Base):
    """An application that received a code in an SSO session: whom to tell at logout."""

    __tablename__ = "session_clients"
    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class EphemeralStateRow(Base):
    """Short-lived state (pending requests, codes, replay caches) for the SQL state store."""

    __tablename__ = "ephemeral_state"
    namespace: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    taken: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditRecordRow(Base):
    """One record of the append-only audit log (broker.audit).

    Written by one INSERT: (``lane``, ``lane_seq``) is the writer's own gap-free numbering
    and ``mac`` the record's HMAC. ``seq``, ``prev_hash`` and ``hash`` place it in the hash
    chain once sealed (NULL until then). Records from before sealing existed are in lane
    ``legacy`` with ``lane_seq`` = ``seq`` and no ``mac`` (their chain hash covers them).
    """

    __tablename__ = "audit_records"
    __table_args__ = (Index("ix_audit_records_event_time", "event", "recorded_at"),)
    lane: Mapped[str] = mapped_column(String(32), primary_key=True)
    lane_seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    event: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(255), nullable=True)
    client_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[str] = mapped_column(Text)
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditHeadRow(Base):
    """The chain's head (one row): locked by whoever seals, and detects a truncated chain."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


# --- policy governance and the decision log (broker.policy_store, broker.decision_log) ---


class PolicyBundleVersionRow(Base):
    """One governed version of the policy bundle; ``position`` orders versions by proposal."""

    __tablename__ = "policy_bundle_versions"
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # proposed | approved | active | superseded
    bundle: Mapped[str] = mapped_column(Text)  # PolicyBundle.to_json() as JSON text
    proposer: Mapped[str] = mapped_column(String(255))
    proposed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    approver: Mapped[str | None] = mapped_column(String(255), nullable=True)
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    activated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PolicyActiveRow(Base):
    """The single row naming the version in force; locked by every activation."""

    __tablename__ = "policy_active"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[str | None] = mapped_column(ForeignKey("policy_bundle_versions.version"), nullable=True)
    activated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PolicyHistoryRow(Base):
    """One governance step (proposed, approved, refused ...), kept in order."""

    __tablename__ = "policy_history"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    event: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(255))
    details: Mapped[str] = mapped_column(Text)


class PolicyDecisionRow(Base):
    """A recorded policy decision: the request's decision facts, the outcome and the bundle revision."""

    __tablename__ = "policy_decisions"
    __table_args__ = (Index("ix_policy_decisions_service_time", "service", "decided_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    bundle: Mapped[str] = mapped_column(String(140))
    subject: Mapped[str] = mapped_column(String(256), index=True)
    action: Mapped[str] = mapped_column(String(16))
    service: Mapped[str] = mapped_column(String(256))
    allowed: Mapped[bool] = mapped_column(Boolean)
    policy_ids: Mapped[str] = mapped_column(Text)  # JSON list
    request: Mapped[str] = mapped_column(Text)  # compact JSON, see broker.decision_log


class MfaCredentialRow(Base):
    """A person's confirmed second factor (TOTP), its secret encrypted under the master key."""

    __tablename__ = "mfa_credentials"
    __table_args__ = (UniqueConstraint("subject_id", "kind", name="uq_mfa_credentials_subject_kind"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # totp
    encrypted_secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_used_step: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RecoveryCodeRow(Base):
    """A one-time recovery code, stored only as a keyed hash."""

    __tablename__ = "mfa_recovery_codes"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BreakGlassGrantRow(Base):
    """An emergency-access grant: who, which service, why, for how long, and its review."""

    __tablename__ = "break_glass_grants"
    __table_args__ = (Index("ix_break_glass_grants_person_service", "person", "service"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    person: Mapped[str] = mapped_column(String(512))  # the identity's issuer|subject
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    organisation: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(128))
    reason_code: Mapped[str] = mapped_column(String(2))
    justification: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    review_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    review_notes: Mapped[str | None] = mapped_column(Text, nullable=True)


class PrivacyAlertRow(Base):
    """An alert to an organisation's privacy officer: a reference only, no person or patient detail."""

    __tablename__ = "privacy_alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation: Mapped[str] = mapped_column(String(64), index=True)
    reference: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AccountLinkRow(Base):
    """A second account (issuer, subject) linked to a broker subject, with the evidence for it."""

    __tablename__ = "account_links"
    issuer: Mapped[str] = mapped_column(String(255), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))  # proved_both | administrator
    evidence: Mapped[str] = mapped_column(Text)  # JSON
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    linked_by: Mapped[str] = mapped_column(String(255))


class NotificationRow(Base):
    """A message queued for a person (e.g. "your authenticator app was changed"), for the mail relay."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    recipient: Mapped[str | None] = mapped_column(String(320), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SamlServiceProviderRow(Base):
    """A SAML service provider the broker's IdP answers: its settings (JSON) and verified metadata."""

    __tablename__ = "saml_service_providers"
    entity_id: Mapped[str] = mapped_column(String(1024), primary_key=True)
    origin: Mapped[str] = mapped_column(String(16))  # "config" or "cli"
    settings: Mapped[str] = mapped_column(Text)  # JSON of config.saml_sp.ServiceProviderConfig
    metadata_xml: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class SamlSessionParticipantRow(Base):
    """A SAML SP that received an assertion in an SSO session: whom to send a LogoutRequest at logout."""

    __tablename__ = "saml_session_participants"
    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    sp_entity_id: Mapped[str] = mapped_column(String(1024), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    name_id: Mapped[str] = mapped_column(String(512))
    name_id_format: Mapped[str] = mapped_column(String(128))
    session_index: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class DirectoryPersonRow(Base):
    """A person a directory sync imported: canonical attributes per (organisation, directory, object id),
    with where and when they were read (``supercloud directories sync``)."""

    __tablename__ = "directory_people"
    __table_args__ = (
        UniqueConstraint("object_id", "directory_id", "organisation", name="uq_directory_people_object"),
        Index("ix_directory_people_org_username", "organisation", "username"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation: Mapped[str] = mapped_column(String(64))
    directory_id: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(255))  # objectGUID / entryUUID: never reassigned
    username: Mapped[str] = mapped_column(String(320))
    attributes: Mapped[dict] = mapped_column(JSON)  # canonical names (name, email, department ...)
    status: Mapped[str] = mapped_column(String(32))  # AccountStatus value, or "deleted"
    source_server: Mapped[str] = mapped_column(String(255))  # provenance: the server that answered
    source_change: Mapped[str] = mapped_column(String(64))  # provenance: uSNChanged / modifyTimestamp read
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    access_ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DirectorySyncStateRow(Base):
    """One directory's sync watermark (the next incremental run starts there) and its last runs."""

    __tablename__ = "directory_sync_state"
    directory_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation: Mapped[str] = mapped_column(String(64))
    cursor: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # SyncCursor.to_json()
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_full_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OrganisationRow(Base):
    """A member organisation as the registry holds it (``broker.organisations_admin``): the editable
    declaration as JSON, where it came from, and whether administrators now own it."""

    __tablename__ = "organisations"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[str] = mapped_column(Text)  # JSON of broker.organisations_admin.OrganisationRecord's fields
    origin: Mapped[str] = mapped_column(String(16))  # config | admin
    managed: Mapped[bool] = mapped_column(Boolean, default=False)  # edited by an administrator: the store wins
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OrganisationsVersionRow(Base):
    """One row: a counter bumped by every change to ``organisations`` (each worker compares it per request)."""

    __tablename__ = "organisations_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer)


class UpstreamSessionRow(Base):
    """The upstream identity provider's session behind an SSO session: what logout in either
    direction needs (OIDC ``sid`` and ID token for ``id_token_hint``; SAML NameID and SessionIndex)."""

    __tablename__ = "upstream_sessions"
    __table_args__ = (
        Index("ix_upstream_sessions_source_sid", "source", "upstream_sid"),
        Index("ix_upstream_sessions_source_subject", "source", "upstream_subject"),
    )
    sid: Mapped[str] = mapped_column(String(64), primary_key=True)  # the broker's SSO session
    source: Mapped[str] = mapped_column(String(64))
    upstream_subject: Mapped[str] = mapped_column(String(512))
    upstream_sid: Mapped[str | None] = mapped_column(String(255), nullable=True)  # OIDC sid / SAML SessionIndex
    name_id: Mapped[str | None] = mapped_column(Text, nullable=True)  # SAML NameID as JSON
    encrypted_id_token: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    authenticated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
