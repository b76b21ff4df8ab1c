from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from mailadmin.models import AuditEvent, MailServer, ServiceAction


class ServiceActionForm(forms.Form):
    verb = forms.ChoiceField(choices=ServiceAction.Verb.choices)


class AuditFilterForm(forms.Form):
    user = forms.CharField(required=False, max_length=150)
    action = forms.CharField(required=False, max_length=80, label="Action contains")
    server = forms.ModelChoiceField(
        queryset=MailServer.objects.all(), required=False, to_field_name="name", empty_label="any server"
    )
    outcome = forms.ChoiceField(choices=[("", "any outcome"), *AuditEvent.Outcome.choices], required=False)
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            is_select = isinstance(field.widget, forms.Select)
            field.widget.attrs["class"] = "form-select form-select-sm" if is_select else "form-control form-control-sm"

    def filter(self, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        """Narrow `events` by the valid filters; an invalid one is ignored (and shown as an error)."""
        self.is_valid()  # fills cleaned_data with the fields that passed
        data = getattr(self, "cleaned_data", {})
        if data.get("user"):
            events = events.filter(username__icontains=data["user"])
        if data.get("action"):
            events = events.filter(action__icontains=data["action"])
        if data.get("server"):
            events = events.filter(server=data["server"])
        if data.get("outcome"):
            events = events.filter(outcome=data["outcome"])
        if data.get("date_from"):
            events = events.filter(created__date__gte=data["date_from"])
        if data.get("date_to"):
            events = events.filter(created__date__lte=data["date_to"])
        return events
