"""Forms of the account pages: a second-factor code, the password change and a calendar feed
token's name."""

from django import forms

from plans.models import validate_one_line_text


class SecondFactorCodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        help_text="The 6-digit code your authenticator app shows now, or one of your recovery "
        "codes.",
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autocapitalize": "none",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )


class AuthenticatorCodeForm(forms.Form):
    code = forms.RegexField(
        label="Code from the app",
        regex=r"^\s*\d{6}\s*$",
        error_messages={"invalid": "Type the 6 digits the app shows, without spaces."},
        help_text="After scanning, the app shows a 6-digit code that changes every 30 seconds.",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


class FeedTokenForm(forms.Form):
    label = forms.CharField(
        label="Name",
        max_length=100,
        validators=[validate_one_line_text],
        help_text="Where you will use it, e.g. “Outlook in the depot office”, so you know which "
        "one to revoke later.",
    )
