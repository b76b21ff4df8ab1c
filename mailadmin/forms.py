from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from mailadmin import validators
from mailadmin.models import AuditEvent, MailServer, ServiceAction

PATH_FIELDS = (
    "conf_dir",
    "mc_path",
    "cf_path",
    "access_path",
    "cert_dir",
    "queue_dir",
    "pid_file",
    "log_file",
    "sendmail_bin",
    "m4_bin",
    "makemap_bin",
    "cf_tree",
)

# Where Debian's sendmail keeps things: shown as placeholders, never submitted unless typed.
DEBIAN_EXAMPLES = {
    "name": "relay1",
    "hostname": "mail.example.org",
    "celery_queue": "mta.relay1",
    "conf_dir": "/etc/mail",
    "mc_path": "/etc/mail/sendmail.mc",
    "cf_path": "/etc/mail/sendmail.cf",
    "access_path": "/etc/mail/access",
    "cert_dir": "/etc/mail/tls",
    "queue_dir": "/var/spool/mqueue",
    "pid_file": "/run/sendmail/mta/sendmail.pid",
    "log_file": "/var/log/mail.log",
}

# Words under /servers/ that are pages, not server names.
RESERVED_SERVER_NAMES = frozenset({"add", "create"})


class MailServerForm(forms.ModelForm):
    """A server the console manages but did not create (embedded is never set from the browser)."""

    class Meta:
        model = MailServer
        fields = [
            "name",
            "description",
            "hostname",
            "smtp_address",
            "smtp_port",
            "syslog_tag",
            "queue_interval",
            "celery_queue",
            *PATH_FIELDS,
        ]
        labels = {
            "conf_dir": "Configuration directory",
            "mc_path": "sendmail.mc",
            "cf_path": "sendmail.cf",
            "sendmail_bin": "sendmail binary",
            "m4_bin": "m4 binary",
            "makemap_bin": "makemap binary",
            "cf_tree": "cf macro tree",
            "pid_file": "PidFile",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in PATH_FIELDS:
            self.fields[name].validators.append(validators.ServerPathValidator(allow_queue_glob=name == "queue_dir"))
        self.fields["hostname"].validators.append(validators.validate_hostname)
        self.fields["syslog_tag"].validators.append(validators.validate_syslog_tag)
        self.fields["queue_interval"].validators.append(validators.validate_queue_interval)
        self.fields["celery_queue"].validators.append(validators.validate_celery_queue)
        self.fields["smtp_port"].validators.append(validators.validate_port)
        self.fields["description"].validators.append(validate_single_line)
        for name, field in self.fields.items():
            classes = (
                "form-control form-control-sm font-monospace" if name in PATH_FIELDS else "form-control form-control-sm"
            )
            field.widget.attrs["class"] = classes
            if name in DEBIAN_EXAMPLES:
                field.widget.attrs["placeholder"] = DEBIAN_EXAMPLES[name]

    def identity_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.Meta.fields if name not in PATH_FIELDS]

    def path_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in PATH_FIELDS]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if name in RESERVED_SERVER_NAMES:
            raise ValidationError(f"“{name}” is reserved for a page of the console; choose another name.")
        return name


def validate_single_line(value: str) -> None:
    if any(not character.isprintable() for character in value):
        raise ValidationError("The description is one line of printable text.")


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
