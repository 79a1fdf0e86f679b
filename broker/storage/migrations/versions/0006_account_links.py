"""account links: one person, several accounts, each link with its evidence

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 02:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_links",
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("linked_at", sa.DateTime(), nullable=False),
        sa.Column("linked_by", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.id"], name=op.f("fk_account_links_subject_id_subjects")),
        sa.PrimaryKeyConstraint("issuer", "subject", name=op.f("pk_account_links")),
    )
    op.create_index(op.f("ix_account_links_subject_id"), "account_links", ["subject_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_account_links_subject_id"), table_name="account_links")
    op.drop_table("account_links")
