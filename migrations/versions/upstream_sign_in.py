"""upstream OpenID providers, linked identities and trips to an upstream in progress

Revision ID: 7c4e1a9f2b63
Revises: 5e7a91c3d2b4
Create Date: 2026-12-06 06:30:00
"""
import sqlalchemy as sa
from alembic import op

from authserver.db import UTCDateTime

revision = '7c4e1a9f2b63'
down_revision = '5e7a91c3d2b4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'upstreams',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('issuer', sa.String(length=500), nullable=False),
        sa.Column('client_id', sa.String(length=255), nullable=False),
        sa.Column('client_secret', sa.Text(), nullable=False),
        sa.Column('label', sa.String(length=100), nullable=False),
        sa.Column('domains', sa.JSON(), nullable=False),
        sa.Column('create_users', sa.Boolean(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    op.create_table(
        'upstream_identities',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('upstream_id', sa.Integer(), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('last_used_at', UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['upstream_id'], ['upstreams.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('upstream_id', 'subject'),
        sa.UniqueConstraint('upstream_id', 'user_id'),
    )
    op.create_index('ix_upstream_identities_user_id', 'upstream_identities', ['user_id'])
    op.create_table(
        'upstream_logins',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('state_hash', sa.String(length=64), nullable=False),
        sa.Column('browser_hash', sa.String(length=64), nullable=False),
        sa.Column('upstream_id', sa.Integer(), nullable=False),
        sa.Column('nonce', sa.String(length=100), nullable=False),
        sa.Column('code_verifier', sa.String(length=200), nullable=False),
        sa.Column('purpose', sa.String(length=16), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('next_url', sa.Text(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('expires_at', UTCDateTime(), nullable=False),
        sa.Column('used_at', UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['upstream_id'], ['upstreams.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('state_hash'),
    )
    op.create_index('ix_upstream_logins_expires_at', 'upstream_logins', ['expires_at'])


def downgrade():
    op.drop_index('ix_upstream_logins_expires_at', table_name='upstream_logins')
    op.drop_table('upstream_logins')
    op.drop_index('ix_upstream_identities_user_id', table_name='upstream_identities')
    op.drop_table('upstream_identities')
    op.drop_table('upstreams')
