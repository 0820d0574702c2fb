"""Fixtures shared by the token unit tests: a user, a browser session of hers, a client."""
import pytest

from authserver.accounts import services as accounts
from authserver.accounts.models import User
from authserver.extensions import db
from authserver.oauth import services as oauth
from support import make_user


@pytest.fixture
def alice(frozen, app, ctx):
    return db.session.get(User, make_user(app))


@pytest.fixture
def bs(alice):
    return accounts.start_session(alice, ["pwd"])[1]


@pytest.fixture
def rp(ctx):
    return oauth.create_client("App", ["http://127.0.0.1/cb"])[0]
