"""audit log: each record written by one INSERT in its writer's lane, sealed into the chain in batches

Records gain ``lane``/``lane_seq`` (the new primary key: each writer's own gap-free
numbering) and ``mac`` (the record's own HMAC); ``seq``, ``prev_hash`` and ``hash`` stay
NULL until a sealer links the record into the chain. Existing records become lane
``legacy`` with ``lane_seq`` = ``seq``: their chain is unchanged and still verifies.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_records", sa.Column("lane", sa.String(length=32), nullable=True))
    op.add_column("audit_records", sa.Column("lane_seq", sa.Integer(), nullable=True))
    op.add_column("audit_records", sa.Column("mac", sa.String(length=64), nullable=True))
    op.execute("UPDATE audit_records SET lane = 'legacy', lane_seq = seq")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_constraint("pk_audit_records", type_="primary")
        batch_op.alter_column("lane", existing_type=sa.String(length=32), nullable=False)
        batch_op.alter_column("lane_seq", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=True)
        batch_op.create_primary_key("pk_audit_records", ["lane", "lane_seq"])
        batch_op.create_unique_constraint("uq_audit_records_seq", ["seq"])


def downgrade() -> None:
    # The old code can verify only the old chain: refuse rather than lose or strand records.
    written = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM audit_records WHERE lane <> 'legacy'")).scalar_one()
    if written:
        raise RuntimeError(f"cannot downgrade: {written} audit records were written in lanes, which revision 0007 cannot verify")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_constraint("uq_audit_records_seq", type_="unique")
        batch_op.drop_constraint("pk_audit_records", type_="primary")
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_primary_key("pk_audit_records", ["seq"])
        batch_op.drop_column("mac")
        batch_op.drop_column("lane_seq")
        batch_op.drop_column("lane")
