"""the issuer's signing key set in the database (private keys sealed under the secret key)

Revision ID: 6b1d4e7a2c95
Revises: 9c4e1a7b2f53
Create Date: 2026-12-06 05:40:00

"""
from alembic import op
import sqlalchemy as sa

import authserver.db


# revision identifiers, used by Alembic.
revision = '6b1d4e7a2c95'
down_revision = '9c4e1a7b2f53'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'key_set',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('generation', sa.Integer(), nullable=False),
        sa.Column('updated_at', authserver.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'signing_keys',
        sa.Column('kid', sa.String(length=100), nullable=False),
        sa.Column('alg', sa.String(length=8), nullable=False),
        sa.Column('private_key', sa.Text(), nullable=False),
        sa.Column('created_at', authserver.db.UTCDateTime(), nullable=False),
        sa.Column('activates_at', authserver.db.UTCDateTime(), nullable=False),
        sa.Column('retires_at', authserver.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('kid'),
    )


def downgrade():
    op.drop_table('signing_keys')
    op.drop_table('key_set')
