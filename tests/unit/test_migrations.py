"""The Alembic migrations build exactly the schema the models describe (no drift)."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from authserver.accounts.search import is_search_index
from authserver.extensions import db


def include_name(name, type_, parent_names):
    return not (type_ in ("table", "index") and is_search_index(name))


def test_models_and_migrations_do_not_differ(app):
    """Autogenerate against the migrated database finds nothing to add, drop or alter."""
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "include_name": include_name})
        diff = compare_metadata(context, db.metadata)
    assert diff == []
