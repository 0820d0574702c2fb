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
    # Nonces were unbounded before; a btree entry is limited (PostgreSQL: about 2,700 bytes).
    # Codes live 60 seconds, so dropping the few with a nonce over the new bound loses nothing.
    op.execute("DELETE FROM authorization_codes WHERE length(nonce) > 512")
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.create_index('ix_authorization_codes_client_nonce', ['client_id', 'nonce'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_authorization_codes_client_nonce')
