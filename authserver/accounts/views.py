"""bp "accounts": /login, /login/mfa, /login/mfa/enrol, /login/restart, /account/..."""
from __future__ import annotations

import segno
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup

from ..extensions import limiter
from . import login_flow, mfa, passkey_views, services, signin, upstreams
from .factors import passkey, recovery, second_step
from .forms import ConfirmForm, LoginForm, MfaEnrolForm, MfaForm, ReauthForm

bp = Blueprint("accounts", __name__)


def _login_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    """Hosted sign-in: one generic message for an unknown user and a wrong password."""
    login_flow.remember_next(request.args.get("next"))
    form = LoginForm()
    if request.method == "GET":
        form.username.data = request.args.get("login_hint", "")[:320]
        passkey_views.prepare_login_page()
        if request.args.get("reset") == "done":
            flash("Your password has been changed.", "success")
        return _login_page(form)
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
    return login_flow.begin(user, ["pwd"])


def _login_page(form: LoginForm, error: str | None = None):
    if error:
        form.form_errors.append(error)
    return render_template("accounts/login.html", form=form,
                           upstreams=upstreams.sign_in_buttons())


@bp.route("/login/mfa", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login_mfa():
    """The second step: a one-time code or a recovery code, throttled per account."""
    try:
        record, user = login_flow.resume("mfa")
        form = MfaForm()
        if form.validate_on_submit():
            method = second_step.verify(record, user, form.code.data)
            return login_flow.respond(signin.complete_factor(record, "mfa", [method, "mfa"]))
    except signin.SignInOver as exc:
        return login_flow.over(exc)
    except (second_step.SecondStepRejected, second_step.SecondStepLocked) as exc:
        form.code.errors.append(exc.message)
    return render_template("accounts/mfa.html", form=form, user=user,
                           passkeys=passkey.user_passkeys(user, second_step=True))


@bp.route("/login/mfa/enrol", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login_enrol():
    """Enrolment right after the password, for a user the MFA policy covers."""
    try:
        record, user = login_flow.resume("enrol")
        form = MfaEnrolForm()
        if form.validate_on_submit():
            codes = mfa.confirm_enrolment(user, form.code.data)
            if codes:
                decision = signin.complete_factor(record, "enrol", ["otp", "mfa"])
                if decision.step != "finish":
                    return login_flow.respond(decision)
                return render_template("accounts/mfa_codes.html", codes=codes,
                                       continue_url=login_flow.finish(decision))
            form.code.errors.append("That code is not right. Check your app's clock.")
    except signin.SignInOver as exc:
        return login_flow.over(exc)
    return _enrol_page(user, form, url_for("accounts.login_enrol"), required=True)


def _enrol_page(user, form, action: str, *, required=False, ask_password=False):
    secret, uri = mfa.enrolment(user)
    qr = Markup(segno.make(uri, error="m").svg_inline(scale=4, title="QR code for your app"))
    return render_template("accounts/mfa_enrol.html", form=form, uri=uri, secret=secret,
                           qr=qr, user=user, action=action, required=required,
                           ask_password=ask_password)


@bp.post("/login/restart")
def restart():
    """The loop page's button: forget this browser's state here and sign in afresh."""
    if not ConfirmForm().validate_on_submit():
        return _expired()
    session.clear()
    return redirect(url_for("accounts.login"), 303)


def _expired():
    return render_template("errors/400.html", title="This form has expired",
                           message="Reload the page and try again.", status=400), 400


@bp.get("/account")
def account():
    user = login_flow.current_user()
    if user is None:
        return redirect(url_for("accounts.login"))
    sessions = services.user_sessions(user)
    linked = {i.upstream_id: i for i in upstreams.identities_of(user)}
    return render_template("accounts/account.html", user=user, sessions=sessions,
                           current=login_flow.current_session(), form=ConfirmForm(),
                           upstreams=upstreams.all_upstreams(), linked=linked,
                           destination=login_flow.pop_destination(user))


@bp.route("/account/mfa", methods=["GET", "POST"])
def account_mfa():
    """Turn the second step on or replace the app: a code, and the password unless recent."""
    bs = login_flow.current_session()
    if bs is None:
        return redirect(url_for("accounts.login"))
    form = MfaEnrolForm()
    if request.method == "GET" and bs.user.mfa_enabled and request.args.get("replace") != "1":
        return render_template("accounts/mfa_status.html", user=bs.user, form=ReauthForm(),
                               remaining=recovery.remaining(bs.user),
                               ask_password=not mfa.recently_signed_in(bs))
    if form.validate_on_submit():
        codes = _reauthenticated(bs, form, lambda: mfa.confirm_enrolment(bs.user, form.code.data))
        if codes:
            return render_template("accounts/mfa_codes.html", codes=codes,
                                   continue_url=url_for("accounts.account"))
        if codes is None and not form.password.errors:
            form.code.errors.append("That code is not right. Check your app's clock.")
    elif request.method == "POST" and form.csrf_token.errors:
        return _expired()
    return _enrol_page(bs.user, form, url_for("accounts.account_mfa"),
                       ask_password=not mfa.recently_signed_in(bs))


def _reauthenticated(bs, form, action):
    """Run action after the re-authentication rule; a refusal becomes a password error."""
    try:
        mfa.reauthenticate(bs.user, bs, form.password.data)
    except (mfa.ReauthRequired, services.LoginRejected, services.LoginThrottled) as exc:
        form.password.errors.append(exc.message)
        return False
    return action()


@bp.post("/account/mfa/disable")
def account_mfa_disable():
    """Turn the second step off: the password unless recent, and a notice email."""
    return _mfa_button(lambda user: mfa.turn_off(user), "Two-step sign-in is off.")


@bp.post("/account/mfa/recovery-codes")
def account_mfa_recovery_codes():
    """New recovery codes (the old ones stop working), shown once."""
    return _mfa_button(mfa.new_recovery_codes, None)


def _mfa_button(action, done: str | None):
    bs = login_flow.current_session()
    if bs is None:
        return redirect(url_for("accounts.login"))
    form = ReauthForm()
    if not form.validate_on_submit():
        return _expired() if form.csrf_token.errors else redirect(url_for("accounts.account_mfa"))
    if not bs.user.mfa_enabled:
        return redirect(url_for("accounts.account_mfa"), 303)
    result = _reauthenticated(bs, form, lambda: action(bs.user) or True)
    if result is False:
        return render_template("accounts/mfa_status.html", user=bs.user, form=form,
                               remaining=recovery.remaining(bs.user), ask_password=True), 400
    if done is None:
        return render_template("accounts/mfa_codes.html", codes=result,
                               continue_url=url_for("accounts.account"))
    flash(done, "success")
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
