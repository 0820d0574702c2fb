"""index for the nonce replay check on authorization codes

Revision ID: 3f6b2c8d9a10
Revises: e20221698d9a
Create Date: 2026-11-27 08:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '3f6b2c8d9a10'
down_revision = 'e20221698d9a'
branch_labels = None
depends_on = None


def upgrade():
    # A hash index on PostgreSQL: nonces were unbounded before, and a btree entry is limited
    # to about 2,700 bytes, so a btree would refuse to build over a stored long nonce.
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.create_index('ix_authorization_codes_nonce', ['nonce'], unique=False,
                              postgresql_using='hash')


def downgrade():
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_authorization_codes_nonce', postgresql_using='hash')
