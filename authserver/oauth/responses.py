"""Rendering a decision (decisions.py) as the HTTP answer: the only place that builds one."""
from __future__ import annotations

from flask import redirect, render_template, url_for

from . import decisions as d
from . import services
from .forms import ConsentForm, RestartForm
from .server import Refusal, current_server


def render(decision: d.Decision):
    """The response for a decision; codes and errors go through Authlib's own
    create_authorization_response (its server and grant hooks run on both)."""
    server = current_server()
    if isinstance(decision, d.IssueCode):
        req = decision.grant.request
        req.browser_session, req.issued_code = decision.session, decision.code
        return server.create_authorization_response(
            request=req, grant=decision.grant, grant_user=decision.user)
    if isinstance(decision, d.ErrorRedirect):
        req = decision.oauth_request
        return server.create_authorization_response(
            request=req, grant=Refusal(req, server, decision.error), grant_user=None)
    if isinstance(decision, d.AskConsent):
        return render_template("oauth/consent.html", client=decision.client,
                               scopes=decision.grant.request.scope.split(), user=decision.user,
                               form=ConsentForm())
    if isinstance(decision, d.ToSignIn):
        hint = {"login_hint": decision.login_hint} if decision.login_hint else {}
        return redirect(url_for("accounts.login", next=decision.next_url, **hint))
    if isinstance(decision, d.NoLicence):
        return render_template("accounts/no_licence.html", client=decision.client,
                               user=decision.user)
    if isinstance(decision, d.LoopPage):
        return loop_page(decision)
    return error_page(decision.title, decision.message, decision.status)


def loop_page(decision: d.LoopPage):
    """SPEC section 7: a page (200, no redirect) that explains and offers a clean sign-in."""
    client = services.query_client(decision.client_id)
    return render_template("errors/loop.html", client=client, form=RestartForm(),
                           reason=decision.reason,
                           cookies_blocked=decision.cookies_blocked), 200


def error_page(title: str, message: str, status: int = 400):
    return render_template("oauth/error.html", title=title, message=message), status


def form_expired():
    return render_template("errors/400.html", title="This form has expired",
                           message="The form expired or was sent from another page. "
                                   "Go back, reload the page and try again.", status=400), 400
