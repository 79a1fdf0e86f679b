"""organisation registry in the store (edited by administrators, seeded from config) and the
upstream identity provider's session behind each SSO session (for upstream logout)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 04:35:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("managed", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("retired_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
    )
    op.create_table(
        "organisations_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations_version")),
    )
    op.create_table(
        "upstream_sessions",
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("upstream_subject", sa.String(length=512), nullable=False),
        sa.Column("upstream_sid", sa.String(length=255), nullable=True),
        sa.Column("name_id", sa.Text(), nullable=True),
        sa.Column("encrypted_id_token", sa.LargeBinary(), nullable=True),
        sa.Column("authenticated_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_upstream_sessions")),
    )
    op.create_index("ix_upstream_sessions_source_sid", "upstream_sessions", ["source", "upstream_sid"], unique=False)
    op.create_index("ix_upstream_sessions_source_subject", "upstream_sessions", ["source", "upstream_subject"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_upstream_sessions_source_subject", table_name="upstream_sessions")
    op.drop_index("ix_upstream_sessions_source_sid", table_name="upstream_sessions")
    op.drop_table("upstream_sessions")
    op.drop_table("organisations_version")
    op.drop_table("organisations")
