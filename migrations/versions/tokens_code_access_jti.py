"""authorization codes remember the jti of the access token issued for them

Revision ID: 7a4e1c2b9d31
Revises: 7c4e1a9f2b63
Create Date: 2026-12-06 05:45:00

A replayed code revokes that access token as well as the refresh-token family
(RFC 6749 section 4.1.2).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7a4e1c2b9d31'
down_revision = '7c4e1a9f2b63'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('access_jti', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_column('access_jti')
