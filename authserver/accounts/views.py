"""bp "accounts": /login, /login/mfa, /login/restart, /account/..."""
from __future__ import annotations

from flask import (Blueprint, current_app, flash, redirect, render_template, request, session,
                   url_for)

from ..extensions import limiter
from . import login_flow, mfa, services
from .forms import ConfirmForm, LoginForm, MfaEnrolForm, MfaForm
from .states import AccountState

bp = Blueprint("accounts", __name__)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"], methods=["POST"])
def login():
    """Hosted sign-in: one generic message for an unknown user and a wrong password."""
    login_flow.remember_next(request.args.get("next"))
    form = LoginForm()
    if request.method == "GET":
        form.username.data = request.args.get("login_hint", "")[:320]
        if request.args.get("reset") == "done":
            flash("Your password has been changed.", "success")
        return render_template("accounts/login.html", form=form)
    if not form.validate_on_submit():
        return _login_page(form)
    try:
        user = services.authenticate(form.username.data, form.password.data)
    except services.LoginThrottled as exc:
        return _login_page(form, exc.message)
    except services.TemporaryPasswordExpired:
        return _login_page(form, "Incorrect user name or password. If you were sent a "
                                 "temporary password, ask your administrator for a new one.")
    except services.LoginRejected as exc:
        return _login_page(form, exc.message)
    return _after_password(user)


def _login_page(form: LoginForm, error: str | None = None):
    if error:
        form.form_errors.append(error)
    return render_template("accounts/login.html", form=form)


def _after_password(user):
    """Route a correct password by account state: inactive, reset, change, MFA, or in."""
    next_url = session.get("next")
    if user.state == AccountState.DISABLED:
        return render_template("accounts/inactive.html", user=user)
    if user.state == AccountState.RESET_REQUIRED:
        return render_template("accounts/reset_required.html", user=user)
    if user.state == AccountState.FORCE_CHANGE_PASSWORD:
        login_flow.set_pending(user, "change_password", ["pwd"], next_url)
        return redirect(url_for("passwords.change_password"), 303)
    if user.mfa_enabled:
        login_flow.set_pending(user, "mfa", ["pwd"], next_url)
        return redirect(url_for("accounts.login_mfa"), 303)
    return finish_sign_in(user, ["pwd"])


def finish_sign_in(user, amr: list[str]):
    """Open the session and continue the pending request, or land on /account."""
    target = login_flow.pop_next()
    login_flow.sign_in(user, amr)
    return redirect(target, 303)


@bp.route("/login/mfa", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"], methods=["POST"])
def login_mfa():
    user, pending = login_flow.get_pending("mfa")
    if user is None:
        return redirect(url_for("accounts.login"))
    form = MfaForm()
    if form.validate_on_submit():
        method = mfa.verify(user, form.code.data)
        if method:
            login_flow.clear_pending()
            login_flow.remember_next(pending.get("next"))
            return finish_sign_in(user, pending.get("amr", ["pwd"]) + [method, "mfa"])
        form.code.errors.append("That code is not right. Try the current code from your app.")
    return render_template("accounts/mfa.html", form=form)


@bp.post("/login/restart")
def restart():
    """The loop page's button: forget this browser's state here and sign in afresh."""
    if not ConfirmForm().validate_on_submit():
        return render_template("errors/400.html", title="This form has expired",
                               message="Reload the page and try again.", status=400), 400
    session.clear()
    return redirect(url_for("accounts.login"), 303)


@bp.get("/account")
def account():
    user = login_flow.current_user()
    if user is None:
        return redirect(url_for("accounts.login"))
    sessions = services.user_sessions(user)
    return render_template("accounts/account.html", user=user, sessions=sessions,
                           current=login_flow.current_session(), form=ConfirmForm())


@bp.route("/account/mfa", methods=["GET", "POST"])
def account_mfa():
    user = login_flow.current_user()
    if user is None:
        return redirect(url_for("accounts.login"))
    form = MfaEnrolForm()
    if form.validate_on_submit():
        codes = mfa.enable(user, form.secret.data, form.code.data)
        if codes:
            return render_template("accounts/mfa_codes.html", codes=codes)
        form.code.errors.append("That code is not right. Check your app's clock and try again.")
    elif request.method == "GET" or not form.secret.data:
        form.secret.data = mfa.new_secret()
    uri = mfa.provisioning_uri(user, form.secret.data, current_app.config["ORGANISATION_NAME"])
    return render_template("accounts/mfa_enrol.html", form=form, uri=uri, user=user,
                           off_form=ConfirmForm(prefix="off"))


@bp.post("/account/mfa/disable")
def account_mfa_disable():
    user = login_flow.current_user()
    if user is None or not ConfirmForm(prefix="off").validate_on_submit():
        return redirect(url_for("accounts.login"))
    mfa.disable(user)
    flash("Two-step sign-in is off.", "success")
    return redirect(url_for("accounts.account"), 303)


@bp.post("/account/sessions/revoke")
def account_sessions_revoke():
    """Sign out everywhere: every session and refresh token of this user."""
    user = login_flow.current_user()
    if user is None or not ConfirmForm().validate_on_submit():
        return redirect(url_for("accounts.login"))
    services.sign_out_everywhere(user)
    login_flow.sign_out()
    flash("You are signed out on every device.", "success")
    return redirect(url_for("accounts.login"), 303)


