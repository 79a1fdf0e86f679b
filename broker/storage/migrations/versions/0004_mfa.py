"""multi-factor authentication: TOTP credentials and recovery codes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 02:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mfa_credentials",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("encrypted_secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_step", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.id"], name=op.f("fk_mfa_credentials_subject_id_subjects")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_credentials")),
        sa.UniqueConstraint("subject_id", "kind", name="uq_mfa_credentials_subject_kind"),
    )
    op.create_index(op.f("ix_mfa_credentials_subject_id"), "mfa_credentials", ["subject_id"], unique=False)
    op.create_table(
        "mfa_recovery_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.id"], name=op.f("fk_mfa_recovery_codes_subject_id_subjects")),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_mfa_recovery_codes")),
    )
    op.create_index(op.f("ix_mfa_recovery_codes_subject_id"), "mfa_recovery_codes", ["subject_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_mfa_recovery_codes_subject_id"), table_name="mfa_recovery_codes")
    op.drop_table("mfa_recovery_codes")
    op.drop_index(op.f("ix_mfa_credentials_subject_id"), table_name="mfa_credentials")
    op.drop_table("mfa_credentials")
