"""clients.web_origins: the origins a browser app may call /token, /userinfo, /revoke from

Revision ID: c0a5e1b7d2f4
Revises: 3f6b2c8d9a10
Create Date: 2026-12-06 05:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c0a5e1b7d2f4'
down_revision = '3f6b2c8d9a10'
branch_labels = None
depends_on = None


def upgrade():
    # NULL (every existing client): the origins of the client's redirect URIs.
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('web_origins', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('web_origins')
