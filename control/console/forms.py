"""The console's forms (Flask-WTF: each carries the session's CSRF token).

Buttons that only say "do it" (Approve, Pause, Resume, Sign out) post a bare `ButtonForm`;
the Run form is built per action type from the whitelist's typed parameters.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    PasswordField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Regexp

from control.remediation.whitelist import MAX_PARAM_LENGTH, CommandType

REASON_MAX = 1000  # the API's limit on a rejection reason
# PostgreSQL cannot store NUL in text: refuse it as the API's Text fields do, not with a 500.
NO_NUL = Regexp(r"^[^\x00]*\Z", message="Must not contain NUL characters.")


class SignInForm(FlaskForm):
    """An operator or viewer key, and where to go afterwards."""

    api_key = PasswordField("API key", validators=[DataRequired(), Length(max=512)])
    next = HiddenField()
    submit = SubmitField("Sign in")


class ButtonForm(FlaskForm):
    """A form whose button is the whole request (and whose page to come back to)."""

    back = HiddenField()


class RejectForm(ButtonForm):
    """Rejecting an action needs a reason, as the API's reject does."""

    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=REASON_MAX), NO_NUL])
    submit = SubmitField("Reject")


class EnrollmentResetForm(ButtonForm):
    """Resetting enrollment revokes the box's key: ask the operator to mean it."""

    confirm = BooleanField("Its agent must enroll again", validators=[InputRequired()])
    submit = SubmitField("Reset enrollment")


def run_form(command_type: CommandType) -> FlaskForm:
    """A form for one whitelisted action type: one text field per parameter, then "Run".

    Each field is labelled with the parameter's name and described by its pattern. The
    values are judged by the whitelist alone, the same check the API's POST /actions makes,
    so a refusal reads the same in both.
    """

    class RunForm(ButtonForm):
        submit = SubmitField("Run")

    for name in sorted(command_type.patterns):
        field = StringField(
            name,
            validators=[Length(max=MAX_PARAM_LENGTH)],
            description=command_type.patterns[name].pattern,
        )
        setattr(RunForm, f"param_{name}", field)
    # Each type's fields get their own ids: several Run forms share the server page.
    return RunForm(prefix=command_type.name)


def run_parameters(form: FlaskForm) -> dict[str, str]:
    """The parameter values of a `run_form` as the whitelist takes them."""
    return {
        field.short_name.removeprefix("param_"): field.data or ""
        for field in form
        if field.short_name.startswith("param_")
    }
