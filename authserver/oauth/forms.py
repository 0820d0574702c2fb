"""Forms on the OAuth pages; each carries csrf_token."""
from flask_wtf import FlaskForm
from wtforms import SubmitField


class ConsentForm(FlaskForm):
    allow = SubmitField("Allow")
    deny = SubmitField("Deny")

    def decision(self) -> bool:
        return bool(self.allow.data) and not self.deny.data


class LogoutForm(FlaskForm):
    submit = SubmitField("Sign out")


class RestartForm(FlaskForm):
    submit = SubmitField("Start a clean sign-in")
