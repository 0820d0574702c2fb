"""Admin use cases: search, keyset pages, state rules, duplicates, self-protection."""
import pytest
from support import make_user

from authserver.accounts.models import User
from authserver.accounts.states import InvalidTransition
from authserver.admin import services
from authserver.extensions import db


def user(user_id) -> User:
    return db.session.get(User, user_id)


def test_search_matches_each_field_and_ignores_case(ctx):
    make_user(ctx, "alice", email="a.l@wonder.example", name="Alice Liddell")
    make_user(ctx, "bob", name="Robert")
    for q in ("ALI", "wonder", "liddell", " Lid "):
        rows, _ = services.search_users(q)
        assert [u.username for u in rows] == ["alice"], q


def test_search_escapes_like_wildcards_and_drops_control_characters(ctx):
    make_user(ctx, "a_b")
    make_user(ctx, "axb")
    assert [u.username for u in services.search_users("a_b")[0]] == ["a_b"]
    assert services.search_users("%")[0] == []
    assert [u.username for u in services.search_users("a\x00_b")[0]] == ["a_b"]
    assert services.clean_query("\x00\x1fAB " + "c" * 500) == "ab " + "c" * 97


def test_search_pages_say_whether_more_follow(ctx):
    for i in range(5):
        make_user(ctx, f"user{i}")
    rows, more = services.search_users("user", page=1, per_page=2)
    assert [u.username for u in rows] == ["user0", "user1"] and more
    rows, more = services.search_users("user", page=3, per_page=2)
    assert [u.username for u in rows] == ["user4"] and not more


def test_keyset_pages_cover_every_user_once(ctx):
    names = [f"u{i:02d}" for i in range(7)]
    for name in names:
        make_user(ctx, name)
    seen, after = [], None
    while True:
        rows, after = services.list_users("", after=after, limit=3)
        seen += [u.username for u in rows]
        if after is None:
            break
    assert seen == names


@pytest.mark.parametrize("user_id", [0, -1, 2**31, 10**40])
def test_ids_outside_the_column_range_are_not_found(ctx, user_id):
    with pytest.raises(services.UserNotFound):
        services.get_user_or_raise(user_id)


def test_create_refuses_a_taken_name_or_address_as_user_exists(ctx):
    make_user(ctx, "carol")
    for username, email in (("CAROL", "new@example.com"), ("new", "Carol@Example.com")):
        with pytest.raises(services.UserExists):
            services.create_user(username, email)


def test_enable_only_takes_a_disabled_account_back_to_active(ctx):
    uid = make_user(ctx, "dave", state="reset_required")
    with pytest.raises(InvalidTransition):
        services.enable_user(user(uid), None)
    user(uid).state = "disabled"
    services.enable_user(user(uid), None)
    assert user(uid).state == "active"
    services.enable_user(user(uid), None)  # already active: nothing to do
    assert user(uid).state == "active"


@pytest.mark.parametrize("action", [services.reset_user, services.send_temporary_password])
def test_refused_transition_changes_nothing(ctx, action):
    uid = make_user(ctx, "erin", state="disabled")
    before = user(uid).password_hash
    with pytest.raises(InvalidTransition):
        action(user(uid), None)
    db.session.rollback()
    assert user(uid).state == "disabled" and user(uid).password_hash == before


@pytest.mark.parametrize("action", [services.reset_user, services.send_temporary_password,
                                    services.disable_user])
def test_an_admin_cannot_lock_themselves_out(ctx, action):
    uid = make_user(ctx, "root", admin=True)
    with pytest.raises(services.SelfActionRefused):
        action(user(uid), uid)
    assert user(uid).state == "active"


def test_profile_lists_events_newest_first_with_actor_names(ctx):
    admin_id = make_user(ctx, "root", admin=True)
    uid = make_user(ctx, "fay")
    services.disable_user(user(uid), admin_id)
    services.enable_user(user(uid), admin_id)
    profile = services.user_profile(user(uid))
    assert [e.name for e in profile.events] == ["user_enabled", "user_disabled"]
    assert profile.actors == {admin_id: "root"}
    assert profile.active_sessions == 0 and profile.licences == []
