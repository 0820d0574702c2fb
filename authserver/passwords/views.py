"""bp "passwords": /forgot-password, /forgot-password/confirm, /forgot-password/resend,
/change-password, /account/password."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from ..accounts import login_flow, signin
from ..accounts.states import InvalidTransition
from ..extensions import limiter
from . import services
from .forms import AccountPasswordForm, ChangeForm, ConfirmForm, ForgotForm, ResendForm

bp = Blueprint("passwords", __name__)


def _forgot_limit() -> str:
    return current_app.config["RATELIMIT_FORGOT"]


@bp.route("/forgot-password", methods=["GET", "POST"])
@limiter.limit(_forgot_limit, methods=["POST"])
def forgot():
    """Story 1: the same 303 to the confirm page whether or not the account exists."""
    form = ForgotForm()
    if request.method == "GET":
        login_flow.remember_next(request.args.get("next"))
        form.username.data = request.args.get("username", "")[:320]
        return render_template("passwords/forgot.html", form=form)
    if not form.validate_on_submit():
        return render_template("passwords/forgot.html", form=form)
    return _send(form.username.data, sent_message=None)


def _send(login: str, sent_message: str | None):
    try:
        services.request_code(login)
        if sent_message:
            flash(sent_message, "success")
    except services.SendThrottled as exc:
        flash(exc.message, "info")
    return redirect(url_for("passwords.confirm", username=login.strip()), 303)


@bp.route("/forgot-password/confirm", methods=["GET", "POST"])
@limiter.limit(_forgot_limit, methods=["POST"])
def confirm():
    form = ConfirmForm()
    resend = ResendForm()
    if request.method == "GET":
        form.username.data = request.args.get("username", "")[:320]
    elif form.validate_on_submit():
        try:
            services.confirm_reset(form.username.data, form.code.data, form.password.data)
        except services.PasswordRejected as exc:
            form.password.errors.append(exc.message)
        except (services.CodeRejected, services.CodeDead) as exc:
            form.code.errors.append(exc.message)
        else:
            return redirect(url_for("accounts.login", reset="done"), 303)
    resend.username.data = form.username.data
    return render_template("passwords/confirm.html", form=form, resend=resend)


@bp.post("/forgot-password/resend")
@limiter.limit(_forgot_limit)
def resend():
    """*Resend code*: a fresh code (the old one stops working), within the resend limits."""
    form = ResendForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            return _expired()
        return redirect(url_for("passwords.confirm"), 303)
    return _send(form.username.data, "We sent a new code. It replaces the one before.")


def _expired():
    return render_template("errors/400.html", title="This form has expired",
                           message="The form expired or was sent from another page. "
                                   "Go back, reload the page and try again.", status=400), 400


@bp.route("/change-password", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"], methods=["POST"])
def change_password():
    """The forced change after a temporary password (only force_change_password), then on
    to whatever the sign-in needs next (accounts.signin)."""
    try:
        record, user = login_flow.resume("change")
        form = ChangeForm()
        if form.validate_on_submit():
            services.change_password(user, form.password.data)
            return login_flow.respond(signin.complete_factor(record, "change", []))
    except signin.SignInOver as exc:
        return login_flow.over(exc)
    except InvalidTransition:
        return login_flow.over(signin.SignInOver())
    except services.PasswordRejected as exc:
        form.password.errors.append(exc.message)
    return render_template("passwords/change.html", form=form, user=user)


@bp.route("/account/password", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"], methods=["POST"])
def account_password():
    user = login_flow.current_user()
    if user is None:
        return redirect(url_for("accounts.login"))
    form = AccountPasswordForm()
    if form.validate_on_submit():
        try:
            services.change_password(user, form.password.data, current=form.current.data)
        except services.PasswordRejected as exc:
            form.password.errors.append(exc.message)
        else:
            login_flow.sign_out()
            flash("Your password has been changed. Sign in with the new one.", "success")
            return redirect(url_for("accounts.login"), 303)
    return render_template("passwords/account_password.html", form=form)
