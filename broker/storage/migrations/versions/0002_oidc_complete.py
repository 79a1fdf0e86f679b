"""oidc complete: client registration metadata, refresh tokens, session clients

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 02:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_endpoint_auth_method", sa.String(length=32), nullable=False, server_default="client_secret_basic"))
        batch_op.add_column(sa.Column("token_endpoint_auth_signing_alg", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("jwks", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("jwks_uri", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("grant_types", sa.JSON(), nullable=False, server_default='["authorization_code", "refresh_token"]'))
        batch_op.add_column(sa.Column("subject_type", sa.String(length=16), nullable=False, server_default="public"))
        batch_op.add_column(sa.Column("sector_identifier", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("backchannel_logout_uri", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("frontchannel_logout_uri", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("allowed_audiences", sa.JSON(), nullable=False, server_default="[]"))

    with op.batch_alter_table("issued_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("family_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_issued_tokens_family_id"), ["family_id"], unique=False)

    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("sid", sa.String(length=64), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("grant", sa.JSON(), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_refresh_tokens")),
    )
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refresh_tokens_family_id"), ["family_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refresh_tokens_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refresh_tokens_subject_id"), ["subject_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refresh_tokens_sid"), ["sid"], unique=False)

    op.create_table(
        "session_clients",
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sid", "client_id", name=op.f("pk_session_clients")),
    )
    with op.batch_alter_table("session_clients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_session_clients_subject_id"), ["subject_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("session_clients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_clients_subject_id"))
    op.drop_table("session_clients")
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        for column in ("sid", "subject_id", "client_id", "family_id"):
            batch_op.drop_index(batch_op.f(f"ix_refresh_tokens_{column}"))
    op.drop_table("refresh_tokens")
    with op.batch_alter_table("issued_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issued_tokens_family_id"))
        batch_op.drop_column("family_id")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        for column in ("allowed_audiences", "frontchannel_logout_uri", "backchannel_logout_uri", "sector_identifier",
                       "subject_type", "grant_types", "jwks_uri", "jwks", "token_endpoint_auth_signing_alg",
                       "token_endpoint_auth_method"):
            batch_op.drop_column(column)
