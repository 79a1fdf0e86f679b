"""notifications outbox: messages to people about security changes to their account

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index(op.f("ix_notifications_subject_id"), "notifications", ["subject_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_notifications_subject_id"), table_name="notifications")
    op.drop_table("notifications")
