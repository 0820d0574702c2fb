"""Sign-in and account forms; every one carries csrf_token (Flask-WTF)."""
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Optional, Regexp


class LoginForm(FlaskForm):
    username = StringField("User name or email address", validators=[
        DataRequired("Enter your user name or email address."), Length(max=320),
        Regexp(r"^[^\x00-\x1f\x7f]*\Z",
               message="Enter your user name or email address, without control characters.")])
    password = PasswordField("Password", validators=[
        DataRequired("Enter your password."), Length(max=256),
        Regexp(r"^[^\x00]*\Z", message="Your password cannot contain a NUL character.")])
    submit = SubmitField("Sign in")


class MfaForm(FlaskForm):
    code = StringField("One-time code or recovery code", validators=[
        DataRequired("Enter the code from your authenticator app."),
        Length(max=64, message="That code is too long.")])
    submit = SubmitField("Verify")


def _password(label="Current password"):
    return PasswordField(label, validators=[Optional(), Length(max=256)])


class MfaEnrolForm(FlaskForm):
    code = StringField("Code from your app", validators=[
        DataRequired("Enter the 6-digit code."),
        Regexp(r"^\s*\d{6}\s*$", message="Enter the 6 digits your app shows.")])
    password = _password()
    submit = SubmitField("Turn on two-step sign-in")


class ReauthForm(FlaskForm):
    """A button that needs the current password unless the user signed in moments ago."""

    password = _password()
    submit = SubmitField("OK")


class ConfirmForm(FlaskForm):
    """A bare CSRF-protected button (sign out everywhere, start over)."""

    submit = SubmitField("OK")
