"""Sign-in forms (WTForms with GOV.UK Frontend widgets); every form carries a CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovPasswordInput, GovSubmitInput, GovTextInput
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import InputRequired, Length


class EmailForm(FlaskForm):
    """Step one: the work email address that says which organisation signs the person in."""

    email = StringField(
        "Work email address",
        widget=GovTextInput(),
        validators=[InputRequired(message="Enter your work email address"), Length(max=256, message="Email address must be 256 characters or fewer")],
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())


class PasswordForm(FlaskForm):
    """Step two: the password, checked by the organisation's directory."""

    password = PasswordField(
        "Password",
        widget=GovPasswordInput(),
        validators=[InputRequired(message="Enter your password"), Length(max=1024, message="Password must be 1024 characters or fewer")],
    )
    submit = SubmitField("Sign in", widget=GovSubmitInput())
