"""SAML identity provider: registered service providers and who received an assertion in each SSO session

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28 04:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saml_service_providers",
        sa.Column("entity_id", sa.String(length=1024), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("metadata_xml", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("entity_id", name=op.f("pk_saml_service_providers")),
    )
    op.create_table(
        "saml_session_participants",
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("sp_entity_id", sa.String(length=1024), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("name_id", sa.String(length=512), nullable=False),
        sa.Column("name_id_format", sa.String(length=128), nullable=False),
        sa.Column("session_index", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sid", "sp_entity_id", name=op.f("pk_saml_session_participants")),
    )
    op.create_index(op.f("ix_saml_session_participants_subject_id"), "saml_session_participants", ["subject_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_saml_session_participants_subject_id"), table_name="saml_session_participants")
    op.drop_table("saml_session_participants")
    op.drop_table("saml_service_providers")
