"""The form a user creates a token of their own with: only scopes their role reaches are offered."""

from __future__ import annotations

from django import forms
from django.core.validators import MaxValueValidator

from api import tokens
from mailadmin.models import MailServer
from mailadmin.roles import role_of


class TokenForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="What it is for, e.g. 'queue age check on relay1'.")
    scopes = forms.MultipleChoiceField(choices=[], widget=forms.CheckboxSelectMultiple)
    days = forms.IntegerField(min_value=1, initial=90, label="Expires after (days)")
    servers = forms.ModelMultipleChoiceField(
        queryset=MailServer.objects.order_by("name"),
        required=False,
        to_field_name="name",
        widget=forms.CheckboxSelectMultiple,
        label="Hosts",
        help_text="None ticked: every host.",
    )

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["scopes"].choices = [(scope, scope) for scope in tokens.scopes_within_role(role_of(user))]
        self.fields["days"].validators.append(MaxValueValidator(tokens.max_days()))
        self.fields["name"].widget.attrs["class"] = "form-control form-control-sm"
        self.fields["days"].widget.attrs["class"] = "form-control form-control-sm"

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if any(not ch.isprintable() for ch in name):
            raise forms.ValidationError("No control characters or line breaks in a token's name.")
        return name
