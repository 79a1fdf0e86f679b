"""dynamic client registration (initial access tokens, registration metadata) and the back-channel logout outbox

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backchannel_logout_session_required", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("frontchannel_logout_session_required", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("contacts", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("scope", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("sector_identifier_uri", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("organisation", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("registration_token_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(), nullable=True))

    op.create_table(
        "initial_access_tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("organisation", sa.String(length=64), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_initial_access_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_initial_access_tokens_token_hash")),
    )

    op.create_table(
        "backchannel_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("public_subject", sa.String(length=255), nullable=False),
        sa.Column("alg", sa.String(length=8), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backchannel_outbox")),
        sa.UniqueConstraint("jti", name=op.f("uq_backchannel_outbox_jti")),
    )
    op.create_index(op.f("ix_backchannel_outbox_sid"), "backchannel_outbox", ["sid"], unique=False)
    op.create_index("ix_backchannel_outbox_state_due", "backchannel_outbox", ["state", "next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_backchannel_outbox_state_due", table_name="backchannel_outbox")
    op.drop_index(op.f("ix_backchannel_outbox_sid"), table_name="backchannel_outbox")
    op.drop_table("backchannel_outbox")
    op.drop_table("initial_access_tokens")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        for name in ("updated_at", "registration_token_hash", "organisation", "sector_identifier_uri", "scope", "contacts",
                     "frontchannel_logout_session_required", "backchannel_logout_session_required"):
            batch_op.drop_column(name)
