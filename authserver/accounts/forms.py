"""Sign-in and account forms; every one carries csrf_token (Flask-WTF)."""
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Regexp


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
    code = StringField("One-time code", validators=[
        DataRequired("Enter the code from your authenticator app."), Length(max=32)])
    submit = SubmitField("Verify")


class MfaEnrolForm(FlaskForm):
    secret = HiddenField(validators=[DataRequired(), Length(max=64)])
    code = StringField("Code from your app", validators=[
        DataRequired("Enter the 6-digit code."), Regexp(r"^\s*\d{6}\s*$", message="6 digits.")])
    submit = SubmitField("Turn on two-step sign-in")


class ConfirmForm(FlaskForm):
    """A bare CSRF-protected button (sign out everywhere, turn MFA off, start over)."""

    submit = SubmitField("OK")
