"""sign-ins in progress, recovery codes as rows, sealed authenticator secrets, the second
step's throttle, account versions and the state before Disable

Revision ID: 5a1c9e7b3d20
Revises: c0a5e1b7d2f4
Create Date: 2026-12-06 05:30:00

Existing authenticator secrets are sealed here (authserver.sealing, under the secret key of
the app running the migration); existing recovery codes move to their table unchanged
(they keep working; users are told on /account/mfa to make new ones at their next change).
"""
import json

import sqlalchemy as sa
from alembic import op
from flask import current_app

from authserver import sealing
from authserver.db import UTCDateTime

revision = '5a1c9e7b3d20'
down_revision = 'c0a5e1b7d2f4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'sign_ins',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('id_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('step', sa.String(length=32), nullable=False),
        sa.Column('done', sa.JSON(), nullable=False),
        sa.Column('amr', sa.JSON(), nullable=False),
        sa.Column('seen_state', sa.String(length=32), nullable=False),
        sa.Column('seen_password_version', sa.Integer(), nullable=False),
        sa.Column('seen_mfa_version', sa.Integer(), nullable=False),
        sa.Column('next_url', sa.Text(), nullable=True),
        sa.Column('otp_tries', sa.Integer(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('expires_at', UTCDateTime(), nullable=False),
        sa.Column('ended_at', UTCDateTime(), nullable=True),
        sa.Column('ended_reason', sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('id_hash'))
    op.create_index('ix_sign_ins_user_id', 'sign_ins', ['user_id'])
    op.create_index('ix_sign_ins_expires_at', 'sign_ins', ['expires_at'])
    op.create_table(
        'recovery_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id', 'code_hash'))
    op.create_index('ix_recovery_codes_user_id', 'recovery_codes', ['user_id'])
    # No batch mode on SQLite: recreating `users` would DROP it, and with foreign keys on,
    # that cascades to every session, licence and token of every user. SQLite (3.35+) adds,
    # drops and renames columns in place.
    for column in (
            sa.Column('state_before_disable', sa.String(length=32)),
            sa.Column('totp_last_step', sa.BigInteger()),
            sa.Column('totp_pending', sa.String(length=255)),
            sa.Column('totp_pending_expires_at', UTCDateTime()),
            sa.Column('mfa_failures', sa.Integer(), nullable=False, server_default='0'),
            sa.Column('mfa_locked_until', UTCDateTime()),
            sa.Column('password_version', sa.Integer(), nullable=False, server_default='0'),
            sa.Column('mfa_version', sa.Integer(), nullable=False, server_default='0')):
        op.add_column('users', column)
    if _sqlite():
        op.add_column('users', sa.Column('totp_secret_sealed', sa.String(length=255)))
        op.execute("UPDATE users SET totp_secret_sealed = totp_secret")
        op.execute("ALTER TABLE users DROP COLUMN totp_secret")
        op.execute("ALTER TABLE users RENAME COLUMN totp_secret_sealed TO totp_secret")
    else:
        op.alter_column('users', 'totp_secret', type_=sa.String(length=255),
                        existing_type=sa.String(length=64))
    _move_secrets_and_codes()
    _drop_column('users', 'recovery_codes')


def _sqlite() -> bool:
    return op.get_bind().dialect.name == 'sqlite'


def _drop_column(table: str, column: str) -> None:
    if _sqlite():
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    else:
        op.drop_column(table, column)


def _move_secrets_and_codes():
    conn = op.get_bind()
    users = sa.table('users', sa.column('id', sa.Integer), sa.column('totp_secret', sa.String),
                     sa.column('recovery_codes', sa.JSON))
    codes = sa.table('recovery_codes', sa.column('user_id', sa.Integer),
                     sa.column('code_hash', sa.String), sa.column('created_at', UTCDateTime))
    rows = conn.execute(sa.select(users.c.id, users.c.totp_secret, users.c.recovery_codes)
                        .where(sa.or_(users.c.totp_secret.is_not(None),
                                      users.c.recovery_codes.is_not(None)))).all()
    for user_id, secret, recovery in rows:
        if secret and not secret.startswith(sealing.PREFIX):
            sealed = sealing.seal(current_app.config, secret.encode(), "totp")
            conn.execute(users.update().where(users.c.id == user_id)
                         .values(totp_secret=sealed))
        if isinstance(recovery, str):
            recovery = json.loads(recovery or "[]")
        for digest in sorted(set(recovery or [])):
            conn.execute(codes.insert().values(user_id=user_id, code_hash=digest,
                                               created_at=sa.func.current_timestamp()))


def downgrade():
    op.add_column('users', sa.Column('recovery_codes', sa.JSON()))
    for name in ('mfa_version', 'password_version', 'mfa_locked_until', 'mfa_failures',
                 'totp_pending_expires_at', 'totp_pending', 'totp_last_step',
                 'state_before_disable'):
        _drop_column('users', name)
    op.drop_index('ix_recovery_codes_user_id', table_name='recovery_codes')
    op.drop_table('recovery_codes')
    op.drop_index('ix_sign_ins_expires_at', table_name='sign_ins')
    op.drop_index('ix_sign_ins_user_id', table_name='sign_ins')
    op.drop_table('sign_ins')
