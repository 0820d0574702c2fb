"""Forgot-password and change-password forms (field names are SPEC section 2)."""
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp

# A name is looked up in the database: control characters (PostgreSQL refuses NUL in text)
# and anything longer than an email address can be are form errors, not queries.
_NAME = [DataRequired("Enter your user name or email address."),
         Length(max=320, message="Use at most 320 characters."),
         Regexp(r"^[^\x00-\x1f\x7f]*\Z",
                message="Enter your user name or email address, without control characters.")]
_NEW = [DataRequired("Choose a new password."),
        Length(max=256, message="Use at most 256 characters.")]
_AGAIN = [DataRequired("Type the new password again."),
          EqualTo("password", message="The two passwords are not the same.")]


class ForgotForm(FlaskForm):
    username = StringField("User name or email address", validators=_NAME)
    submit = SubmitField("Send code")


class ConfirmForm(FlaskForm):
    username = StringField("User name or email address", validators=_NAME)
    code = StringField("Verification code", validators=[
        DataRequired("Enter the code from the email."),
        # ASCII digits only: \d would also take other scripts' digits and spend a try on them.
        Regexp(r"^\s*[0-9]{6}\s*$", message="The code is the 6 digits from the email.")])
    password = PasswordField("New password", validators=_NEW)
    password_confirm = PasswordField("New password again", validators=_AGAIN)
    submit = SubmitField("Submit")


class ResendForm(FlaskForm):
    username = StringField(validators=_NAME)
    submit = SubmitField("Resend code")


class ChangeForm(FlaskForm):
    password = PasswordField("New password", validators=_NEW)
    password_confirm = PasswordField("New password again", validators=_AGAIN)
    submit = SubmitField("Change password")


class AccountPasswordForm(ChangeForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=256)])
