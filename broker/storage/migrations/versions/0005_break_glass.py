"""break-glass grants with their review, and privacy-officer alerts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 02:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "break_glass_grants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("reference", sa.String(length=16), nullable=False),
        sa.Column("person", sa.String(length=512), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("organisation", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("reason_code", sa.String(length=2), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("granted_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("review_outcome", sa.String(length=16), nullable=True),
        sa.Column("reviewed_by", sa.String(length=255), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(), nullable=True),
        sa.Column("review_notes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_break_glass_grants")),
        sa.UniqueConstraint("reference", name=op.f("uq_break_glass_grants_reference")),
    )
    op.create_index("ix_break_glass_grants_person_service", "break_glass_grants", ["person", "service"], unique=False)
    op.create_index(op.f("ix_break_glass_grants_subject_id"), "break_glass_grants", ["subject_id"], unique=False)
    op.create_table(
        "privacy_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organisation", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_alerts")),
    )
    op.create_index(op.f("ix_privacy_alerts_organisation"), "privacy_alerts", ["organisation"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_privacy_alerts_organisation"), table_name="privacy_alerts")
    op.drop_table("privacy_alerts")
    op.drop_index(op.f("ix_break_glass_grants_subject_id"), table_name="break_glass_grants")
    op.drop_index("ix_break_glass_grants_person_service", table_name="break_glass_grants")
    op.drop_table("break_glass_grants")
