"""bp "admin": the Users module (/admin/users), for signed-in users with role admin."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from ..accounts import upstreams
from ..accounts.models import User
from ..accounts.passkeys import PasskeyNotFound
from ..accounts.services import UserInvalid
from ..accounts.states import InvalidTransition
from . import guards, services
from .forms import ActionForm, CreateUserForm

bp = Blueprint("admin", __name__)
bp.before_request(guards.require_admin)

MAX_PAGE = 10_000


@dataclass(frozen=True)
class Action:
    """A profile button: the service it runs, what the flash says, and the question to confirm."""

    run: Callable[[User, int], object]
    done: str
    question: str | None = None


ACTIONS = {
    "reset": Action(
        services.reset_user,
        "Password reset for {u.username}: they were signed out everywhere and must choose a "
        "new password with the code emailed to {u.email}.",
        "Reset the password of {u.username}? They will be signed out everywhere and must "
        "choose a new password with a code sent to {u.email}."),
    "temporary-password": Action(
        services.send_temporary_password,
        "A temporary password was emailed to {u.email}. It is valid until "
        "{u.temp_password_expires_at:%Y-%m-%d %H:%M} UTC.",
        "Email {u.username} a new temporary password? Their current password stops working "
        "and they will be signed out everywhere."),
    "disable": Action(
        services.disable_user,
        "Disabled {u.username}: they cannot sign in, and their sessions ended.",
        "Disable {u.username}? They will be signed out everywhere and cannot sign in."),
    "enable": Action(services.enable_user, "Enabled {u.username}: they can sign in again."),
    "reset-mfa": Action(
        services.reset_mfa,
        "Two-step sign-in reset for {u.username}: their authenticator app, recovery codes and "
        "second-step passkeys were removed, they were signed out everywhere, and {u.email} "
        "was told.",
        "Reset two-step sign-in of {u.username}? Their authenticator app, recovery codes and "
        "the passkeys they use as a second step are removed and they are signed out "
        "everywhere."),
    "revoke-sessions": Action(
        services.revoke_sessions,
        "Signed {u.username} out everywhere: every session and refresh token ended."),
}


def _user(user_id: int) -> User:
    try:
        return services.get_user_or_raise(user_id)
    except services.UserNotFound:
        abort(404, description="There is no such user.")


@bp.get("/admin/users")
def users():
    """The search box (field q) and one page of matching users."""
    q = request.args.get("q", "")[:services.MAX_QUERY]
    page = min(max(request.args.get("page", 1, type=int), 1), MAX_PAGE)
    rows, has_next = services.search_users(q, page=page)
    return render_template("admin/users/index.html", users=rows, q=q, page=page,
                           has_next=has_next, prefix_only=services.is_prefix_term(q))


@bp.route("/admin/users/new", methods=["GET", "POST"])
def new_user():
    """Create user: an invitation with an emailed temporary password nobody else sees."""
    form = CreateUserForm()
    if form.validate_on_submit():
        try:
            user = services.create_user(form.username.data, form.email.data, form.name.data,
                                        admin=form.admin.data, actor_id=g.admin.id)
        except (UserInvalid, services.UserExists) as exc:
            form.form_errors.append(exc.message)
        else:
            flash(f"Created {user.username}: a temporary password was emailed to "
                  f"{user.email}.", "success")
            return redirect(url_for("admin.show", user_id=user.id), 303)
    return render_template("admin/users/new.html", form=form)


@bp.get("/admin/users/<int:user_id>")
def show(user_id: int):
    """The profile: state, sessions, MFA, licences, latest events and the action buttons."""
    profile = services.user_profile(_user(user_id))
    questions = {name: a.question.format(u=profile.user) for name, a in ACTIONS.items()
                 if a.question}
    identities = {i.upstream_id: i for i in upstreams.identities_of(profile.user)}
    return render_template("admin/users/show.html", p=profile, u=profile.user,
                           questions=questions, form=ActionForm(),
                           passkeys=services.list_passkeys(profile.user),
                           all_upstreams=upstreams.all_upstreams(), identities=identities)


@bp.post("/admin/users/<int:user_id>/<action>")
def act(user_id: int, action: str):
    """A profile button; without confirm=yes it first asks on a page whose button reads OK."""
    spec = ACTIONS.get(action) or abort(404)
    user = _user(user_id)
    if spec.question and request.form.get("confirm") != "yes":
        return render_template("admin/users/confirm.html", u=user, action=action,
                               question=spec.question.format(u=user), form=ActionForm())
    try:
        spec.run(user, g.admin.id)
    except (InvalidTransition, services.SelfActionRefused) as exc:
        flash(exc.message, "error")
    else:
        flash(spec.done.format(u=user), "success")
    return redirect(url_for("admin.show", user_id=user.id), 303)


@bp.post("/admin/users/<int:user_id>/passkeys/<int:passkey_id>/remove")
def remove_passkey(user_id: int, passkey_id: int):
    """Remove one of the user's passkeys (a lost device); the user is emailed."""
    user = _user(user_id)
    if not ActionForm().validate_on_submit():
        abort(400, description="This form has expired. Reload the page and try again.")
    try:
        passkey = services.remove_passkey(user, passkey_id, g.admin.id)
    except PasskeyNotFound:
        abort(404, description="There is no such passkey.")
    flash(f"Removed the passkey “{passkey.name}” of {user.username}; "
          f"{user.email} was told.", "success")
    return redirect(url_for("admin.show", user_id=user.id), 303)


@bp.post("/admin/users/<int:user_id>/licences/<client_id>")
def licence(user_id: int, client_id: str):
    """Grant (grant=yes) or remove a licence for one application."""
    user = _user(user_id)
    granted = request.form.get("grant") == "yes"
    try:
        client = services.set_licence(user, client_id, granted, g.admin.id)
    except services.ClientNotFound:
        abort(404, description="There is no such application.")
    verb = "Granted" if granted else "Removed"
    flash(f"{verb} the licence of {user.username} for {client.name}.", "success")
    return redirect(url_for("admin.show", user_id=user.id), 303)


@bp.post("/admin/users/<int:user_id>/identities/<upstream_name>")
def identity(user_id: int, upstream_name: str):
    """Link (a subject given) or unlink the user's identity at one upstream."""
    user = _user(user_id)
    upstream = upstreams.find(upstream_name) or abort(404, description="No such upstream.")
    if not ActionForm().validate_on_submit():
        abort(400, description="This form has expired. Reload the page and try again.")
    subject = request.form.get("subject")
    try:
        if subject is None:
            upstreams.unlink(user, upstream, actor_id=g.admin.id)
            flash(f"Unlinked the {upstream.label} account of {user.username}.", "success")
        else:
            upstreams.link(user, upstream, subject, actor_id=g.admin.id)
            flash(f"Linked a {upstream.label} account to {user.username}.", "success")
    except upstreams.UpstreamInvalid as exc:
        flash(exc.message, "error")
    return redirect(url_for("admin.show", user_id=user.id), 303)
