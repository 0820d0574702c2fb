"""Users module forms; each carries csrf_token (Flask-WTF)."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Regexp

from ..accounts.services import USERNAME_RE


class CreateUserForm(FlaskForm):
    username = StringField("User name", validators=[
        DataRequired("Enter a user name."),
        Regexp(USERNAME_RE, message="Use 1-150 letters, digits or . _ @ + -")])
    email = EmailField("Email address", validators=[
        DataRequired("Enter an email address."), Length(max=320)])
    name = StringField("Display name", validators=[Length(max=200)])
    admin = BooleanField("Administrator")
    submit = SubmitField("Create user")


class ActionForm(FlaskForm):
    """The CSRF token of the profile's small action forms (Reset, Disable, licences...)."""
