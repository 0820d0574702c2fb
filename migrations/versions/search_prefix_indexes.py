"""B-tree indexes for the 1- and 2-character user search (a prefix of the key columns)

A term of 1 or 2 characters matches users whose user name, email or display name begins with
it (authserver/accounts/search.py): a range in code-point order on each key column. SQLite
compares with its BINARY collation, and its plain indexes on the three key columns (the
models' `_trigram` indexes are plain B-trees there) already serve it: nothing to do.
PostgreSQL compares with the "C" collation (byte order, whatever the database's locale) and
needs an index in that collation on each of the three columns; its trigram indexes are GIN.

Like the FTS5 table, these indexes are kept here, not by the models (their names begin with
`users_search_`: autogenerate leaves them alone).

Revision ID: 2d8f6a4c1e57
Revises: 7a4e1c2b9d31
Create Date: 2026-12-06 08:40:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '2d8f6a4c1e57'
down_revision = '7a4e1c2b9d31'
branch_labels = None
depends_on = None

INDEXES = {"users_search_prefix_username": "username_key",
           "users_search_prefix_email": "email_key",
           "users_search_prefix_name": "name_key"}


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name, col in INDEXES.items():
            op.execute(f'CREATE INDEX {name} ON users ({col} COLLATE "C")')


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name in INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
