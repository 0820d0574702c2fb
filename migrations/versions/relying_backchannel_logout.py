"""back-channel logout: clients.backchannel_logout_uri, browser_sessions.public_sid (the
`sid` claim), session_clients (which clients got tokens in which session)

Revision ID: a7c1e5b2d904
Revises: 5a1c9e7b3d20
Create Date: 2026-12-06 06:00:00

"""
import secrets

import sqlalchemy as sa
from alembic import op

from authserver.db import UTCDateTime

revision = 'a7c1e5b2d904'
down_revision = '5a1c9e7b3d20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('backchannel_logout_uri', sa.String(length=320),
                                      nullable=True))
    with op.batch_alter_table('browser_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('public_sid', sa.String(length=32), nullable=True))
    conn = op.get_bind()
    sessions = sa.table('browser_sessions', sa.column('id', sa.Integer),
                        sa.column('public_sid', sa.String))
    for (session_id,) in conn.execute(sa.select(sessions.c.id)).all():
        conn.execute(sessions.update().where(sessions.c.id == session_id)
                     .values(public_sid=secrets.token_urlsafe(16)))
    with op.batch_alter_table('browser_sessions', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_browser_sessions_public_sid', ['public_sid'])
    op.create_table(
        'session_clients',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('session_id', sa.Integer(), nullable=False),
        sa.Column('client_id', sa.String(length=64), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['session_id'], ['browser_sessions.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('session_id', 'client_id'),
    )


def downgrade():
    op.drop_table('session_clients')
    with op.batch_alter_table('browser_sessions', schema=None) as batch_op:
        batch_op.drop_constraint('uq_browser_sessions_public_sid', type_='unique')
        batch_op.drop_column('public_sid')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('backchannel_logout_uri')
