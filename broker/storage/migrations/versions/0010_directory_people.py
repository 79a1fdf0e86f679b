"""directory people: the people each directory sync imported, and each directory's sync watermark

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 04:35:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directory_people",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organisation", sa.String(length=64), nullable=False),
        sa.Column("directory_id", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=False),
        sa.Column("username", sa.String(length=320), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("source_server", sa.String(length=255), nullable=False),
        sa.Column("source_change", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.Column("access_ended_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_people")),
        sa.UniqueConstraint("object_id", "directory_id", "organisation", name="uq_directory_people_object"),
    )
    op.create_index("ix_directory_people_org_username", "directory_people", ["organisation", "username"], unique=False)
    op.create_table(
        "directory_sync_state",
        sa.Column("directory_id", sa.String(length=64), nullable=False),
        sa.Column("organisation", sa.String(length=64), nullable=False),
        sa.Column("cursor", sa.JSON(), nullable=True),
        sa.Column("last_run_at", sa.DateTime(), nullable=True),
        sa.Column("last_full_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("directory_id", name=op.f("pk_directory_sync_state")),
    )


def downgrade() -> None:
    op.drop_table("directory_sync_state")
    op.drop_index("ix_directory_people_org_username", table_name="directory_people")
    op.drop_table("directory_people")
