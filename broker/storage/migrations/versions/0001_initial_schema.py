"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 01:37:14.568479
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op



revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    op.create_table('audit_records',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=True),
    sa.Column('client_id', sa.String(length=128), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_records'))
    )
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.create_index('ix_audit_records_event_time', ['event', 'recorded_at'], unique=False)

    op.create_table('clients',
    sa.Column('client_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('redirect_uris', sa.JSON(), nullable=False),
    sa.Column('post_logout_redirect_uris', sa.JSON(), nullable=False),
    sa.Column('signing_alg', sa.String(length=8), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('client_id', name=op.f('pk_clients'))
    )
    op.create_table('ephemeral_state',
    sa.Column('namespace', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('taken', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('namespace', 'key', name=op.f('pk_ephemeral_state'))
    )
    with op.batch_alter_table('ephemeral_state', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ephemeral_state_expires_at'), ['expires_at'], unique=False)

    op.create_table('issued_tokens',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('client_id', sa.String(length=128), nullable=False),
    sa.Column('subject_id', sa.String(length=36), nullable=False),
    sa.Column('sid', sa.String(length=64), nullable=True),
    sa.Column('code_hash', sa.String(length=64), nullable=True),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('jti', name=op.f('pk_issued_tokens'))
    )
    with op.batch_alter_table('issued_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_issued_tokens_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_issued_tokens_code_hash'), ['code_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_issued_tokens_sid'), ['sid'], unique=False)
        batch_op.create_index(batch_op.f('ix_issued_tokens_subject_id'), ['subject_id'], unique=False)

    op.create_table('signing_keys',
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('alg', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('encrypted_private_key', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('activated_at', sa.DateTime(), nullable=True),
    sa.Column('retired_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('kid', name=op.f('pk_signing_keys'))
    )
    op.create_table('subjects',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('issuer', sa.String(length=255), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subjects')),
    sa.UniqueConstraint('issuer', 'subject', name='uq_subjects_issuer_subject')
    )
    op.create_table('sso_sessions',
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('cookie_hash', sa.String(length=64), nullable=False),
    sa.Column('subject_id', sa.String(length=36), nullable=False),
    sa.Column('identity', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.Column('end_reason', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['subject_id'], ['subjects.id'], name=op.f('fk_sso_sessions_subject_id_subjects')),
    sa.PrimaryKeyConstraint('sid', name=op.f('pk_sso_sessions')),
    sa.UniqueConstraint('cookie_hash', name=op.f('uq_sso_sessions_cookie_hash'))
    )
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_sessions_subject_id'), ['subject_id'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('sso_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sso_sessions_subject_id'))

    op.drop_table('sso_sessions')
    op.drop_table('subjects')
    op.drop_table('signing_keys')
    with op.batch_alter_table('issued_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_issued_tokens_subject_id'))
        batch_op.drop_index(batch_op.f('ix_issued_tokens_sid'))
        batch_op.drop_index(batch_op.f('ix_issued_tokens_code_hash'))
        batch_op.drop_index(batch_op.f('ix_issued_tokens_client_id'))

    op.drop_table('issued_tokens')
    with op.batch_alter_table('ephemeral_state', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ephemeral_state_expires_at'))

    op.drop_table('ephemeral_state')
    op.drop_table('clients')
    with op.batch_alter_table('audit_records', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_records_event_time')

    op.drop_table('audit_records')
    op.drop_table('audit_head')
    
