"""policy governance: bundle versions, the active pointer, history; recorded decisions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 02:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_bundle_versions",
        sa.Column("position", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("bundle", sa.Text(), nullable=False),
        sa.Column("proposer", sa.String(length=255), nullable=False),
        sa.Column("proposed_at", sa.DateTime(), nullable=False),
        sa.Column("approver", sa.String(length=255), nullable=True),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
        sa.Column("activated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_policy_bundle_versions")),
        sa.UniqueConstraint("version", name=op.f("uq_policy_bundle_versions_version")),
    )
    op.create_table(
        "policy_active",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("activated_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version"], ["policy_bundle_versions.version"],
            name=op.f("fk_policy_active_version_policy_bundle_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_active")),
    )
    # The pointer row exists from the start, so every activation locks the same row.
    op.execute("INSERT INTO policy_active (id, version, activated_at) VALUES (1, NULL, NULL)")
    op.create_table(
        "policy_history",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_policy_history")),
    )
    op.create_index(op.f("ix_policy_history_version"), "policy_history", ["version"], unique=False)
    op.create_table(
        "policy_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.Column("bundle", sa.String(length=140), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("service", sa.String(length=256), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("policy_ids", sa.Text(), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_decisions")),
    )
    op.create_index(op.f("ix_policy_decisions_decided_at"), "policy_decisions", ["decided_at"], unique=False)
    op.create_index(op.f("ix_policy_decisions_subject"), "policy_decisions", ["subject"], unique=False)
    op.create_index("ix_policy_decisions_service_time", "policy_decisions", ["service", "decided_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_policy_decisions_service_time", table_name="policy_decisions")
    op.drop_index(op.f("ix_policy_decisions_subject"), table_name="policy_decisions")
    op.drop_index(op.f("ix_policy_decisions_decided_at"), table_name="policy_decisions")
    op.drop_table("policy_decisions")
    op.drop_index(op.f("ix_policy_history_version"), table_name="policy_history")
    op.drop_table("policy_history")
    op.drop_table("policy_active")
    op.drop_table("policy_bundle_versions")
