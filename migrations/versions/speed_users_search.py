"""SQLite: an FTS5 trigram index of the users' search keys, kept by triggers

The Users module's search is `LIKE '%q%'` on username_key, email_key and name_key. On
PostgreSQL the pg_trgm GIN indexes of the initial schema serve it; SQLite had nothing but a
scan (2-7 s at a million users). `users_search` is an external-content FTS5 table over those
three columns (rowid = users.id) with the trigram tokenizer, which answers "which rows
contain this substring" for terms of 3 characters or more (authserver/accounts/search.py).

A later migration that recreates `users` on SQLite (batch "move and copy") drops these
triggers with the old table: it must run create_search_index() again.

Revision ID: 5e7a91c3d2b4
Revises: 6b1d4e7a2c95
Create Date: 2026-12-06 05:50:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '5e7a91c3d2b4'
down_revision = '6b1d4e7a2c95'
branch_labels = None
depends_on = None

COLUMNS = "username_key, email_key, name_key"
NEW = "new.username_key, new.email_key, new.name_key"
OLD = "old.username_key, old.email_key, old.name_key"


def create_search_index():
    op.execute(f"CREATE VIRTUAL TABLE users_search USING fts5({COLUMNS}, content='users', "
               "content_rowid='id', tokenize='trigram')")
    op.execute(f"""CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN
        INSERT INTO users_search(rowid, {COLUMNS}) VALUES (new.id, {NEW});
    END""")
    op.execute(f"""CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN
        INSERT INTO users_search(users_search, rowid, {COLUMNS}) VALUES ('delete', old.id, {OLD});
    END""")
    op.execute(f"""CREATE TRIGGER users_search_update AFTER UPDATE OF {COLUMNS} ON users BEGIN
        INSERT INTO users_search(users_search, rowid, {COLUMNS}) VALUES ('delete', old.id, {OLD});
        INSERT INTO users_search(rowid, {COLUMNS}) VALUES (new.id, {NEW});
    END""")
    op.execute("INSERT INTO users_search(users_search) VALUES ('rebuild')")


def drop_search_index():
    for trigger in ("users_search_insert", "users_search_delete", "users_search_update"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS users_search")


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        create_search_index()


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        drop_search_index()
