"""Forms for the queue pages. Everything that can reach sendmail's argv is allow-listed here.

A quarantine reason becomes one argv element `-Q<reason>`; a selector becomes `-qR<text>`,
`-qS<text>`, `-qI<text>` or `-qQ<text>`. sendmail treats an empty reason or "." as "release"
and an empty selector as "match everything", and a leading "-" would read as another flag, so
those are refused, as are control characters, quotes, backticks and shell or m4 punctuation.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import F
from django.utils import timezone

from mailqueue.models import QueueAction, QueueAlertSettings, QueueMessage
from mailqueue.parser import QUEUE_ID_PATTERN

REASON_MAX = 200
SELECTOR_MAX = 100
FILTER_MAX = 200
# Printable ASCII without quotes, backticks, $, ;, |, &, <, >, \, braces or brackets.
REASON_CHARACTERS = re.compile(r"[A-Za-z0-9 .,:_@+=/#%()!?*-]+")
ADDRESS_SELECTOR_CHARACTERS = re.compile(r"[A-Za-z0-9.@_+=%-]+")
QUEUE_ID_SELECTOR_CHARACTERS = re.compile(r"[A-Za-z0-9]+")
DEBUG_LEVEL = re.compile(
    r"(?:[0-9]{1,2}(?:-[0-9]{1,2})?(?:\.[0-9]{1,3})?)(?:,[0-9]{1,2}(?:-[0-9]{1,2})?(?:\.[0-9]{1,3})?){0,4}"
)


def _common_text_checks(value: str, what: str, limit: int) -> None:
    if not value:
        raise ValidationError(f"The {what} is empty; sendmail would take that to mean everything.", code="empty")
    if len(value) > limit:
        raise ValidationError(f"The {what} is longer than {limit} characters.", code="too_long")
    if any(not ch.isprintable() for ch in value):
        raise ValidationError(f"The {what} contains control characters or line breaks.", code="control")
    if value.startswith("-"):
        raise ValidationError(f"The {what} may not start with '-' (sendmail would read a flag).", code="dash")
    if value != value.strip() or "  " in value:
        raise ValidationError(f"The {what} may not start or end with spaces or hold double spaces.", code="spaces")


def validate_reason(value: str) -> str:
    _common_text_checks(value, "reason", REASON_MAX)
    if value == ".":
        raise ValidationError("A reason of '.' releases instead of quarantining.", code="dot")
    if not REASON_CHARACTERS.fullmatch(value):
        raise ValidationError(
            "Use letters, digits, spaces and . , : _ @ + = / # % ( ) ! ? * - only "
            "(no quotes, backticks, $ ; | & < > \\ or brackets).",
            code="characters",
        )
    return value


def validate_selector(value: str, kind: str) -> str:
    what = {"R": "recipient text", "S": "sender text", "I": "queue id text", "Q": "reason text"}[kind]
    _common_text_checks(value, what, SELECTOR_MAX)
    allowed = {
        "R": ADDRESS_SELECTOR_CHARACTERS,
        "S": ADDRESS_SELECTOR_CHARACTERS,
        "I": QUEUE_ID_SELECTOR_CHARACTERS,
        "Q": REASON_CHARACTERS,
    }[kind]
    if not allowed.fullmatch(value):
        raise ValidationError(f"The {what} holds characters sendmail selectors do not need.", code="characters")
    if not any(ch.isalnum() for ch in value):
        raise ValidationError(f"The {what} needs a letter or digit; punctuation alone selects almost everything.")
    return value


def validate_queue_id(value: str) -> str:
    if not QUEUE_ID_PATTERN.fullmatch(value):
        raise ValidationError(f"{value[:40]!r} is not a sendmail queue id.", code="queue_id")
    return value


def validate_filter_text(value: str) -> str:
    if len(value) > FILTER_MAX:
        raise ValidationError(f"Filters are at most {FILTER_MAX} characters.", code="too_long")
    if any(not ch.isprintable() for ch in value):
        raise ValidationError("Filters may not contain control characters or line breaks.", code="control")
    return value


class ReasonField(forms.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=REASON_MAX * 4, strip=False, validators=[validate_reason], **kwargs)


SORTS = {
    "created": "created",
    "-created": "-created",
    "size": "body_size",
    "-size": "-body_size",
    "sender": "sender",
    "-sender": "-sender",
    "attempts": "attempts",
    "-attempts": "-attempts",
    "priority": "priority",
    "-priority": "-priority",
    "id": "queue_id",
    "-id": "-queue_id",
}
AGE_BANDS = {
    "1h": (None, timedelta(hours=1)),
    "1h-1d": (timedelta(hours=1), timedelta(days=1)),
    "1d-5d": (timedelta(days=1), timedelta(days=5)),
    "5d+": (timedelta(days=5), None),
}
SIZE_BANDS = {
    "10k": (None, 10 * 1024),
    "10k-100k": (10 * 1024, 100 * 1024),
    "100k-1m": (100 * 1024, 1024 * 1024),
    "1m+": (1024 * 1024, None),
}


class QueueFilterForm(forms.Form):
    sender = forms.CharField(
        required=False,
        strip=True,
        validators=[validate_filter_text],
        max_length=FILTER_MAX * 4,
        label="Sender contains",
    )
    recipient = forms.CharField(
        required=False,
        strip=True,
        validators=[validate_filter_text],
        max_length=FILTER_MAX * 4,
        label="Recipient contains (any recipient)",
    )
    domain = forms.CharField(
        required=False,
        strip=True,
        validators=[validate_filter_text],
        max_length=FILTER_MAX * 4,
        label="Recipient domain (any recipient, subdomains too)",
        help_text="Matches a message if any of its recipients is at this domain or below it.",
    )
    subject = forms.CharField(
        required=False,
        strip=True,
        validators=[validate_filter_text],
        max_length=FILTER_MAX * 4,
        label="Subject contains",
    )
    reason = forms.CharField(required=False, strip=True, validators=[validate_filter_text], max_length=FILTER_MAX * 4)
    dsn = forms.ChoiceField(
        required=False,
        label="Bounces",
        choices=[("", "with or without"), ("only", "bounces (DSNs) only"), ("none", "no bounces")],
    )
    state = forms.ChoiceField(required=False, choices=[("", "any state"), *QueueMessage.State.choices])
    age = forms.ChoiceField(
        required=False,
        choices=[
            ("", "any age"),
            ("1h", "< 1 hour"),
            ("1h-1d", "1 hour – 1 day"),
            ("1d-5d", "1–5 days"),
            ("5d+", "> 5 days"),
        ],
    )
    size = forms.ChoiceField(
        required=False,
        choices=[
            ("", "any size"),
            ("10k", "< 10 KB"),
            ("10k-100k", "10–100 KB"),
            ("100k-1m", "100 KB – 1 MB"),
            ("1m+", "> 1 MB"),
        ],
    )
    sort = forms.ChoiceField(required=False, choices=[(key, key) for key in SORTS])

    FILTER_FIELDS = ("sender", "recipient", "domain", "subject", "reason", "state", "age", "size", "dsn")

    def clean_domain(self) -> str:
        """As a postmaster types it: "@Alpha.Example." is the domain alpha.example."""
        return self.cleaned_data["domain"].strip().lstrip("@").rstrip(".").lower()

    def filter(self, messages):
        """The matching rows; an invalid form matches nothing rather than everything."""
        if not self.is_valid():
            return messages.none()
        data = self.cleaned_data
        if data["sender"]:
            messages = messages.filter(sender__icontains=data["sender"])
        if data["recipient"]:
            messages = messages.filter(recipients__icontains=data["recipient"])
        if data["domain"]:
            # One row per (message, domain) and parent domain: an equality on its index, no duplicates.
            messages = messages.filter(domains__server=F("server"), domains__domain=data["domain"])
        if data["subject"]:
            messages = messages.filter(subject__icontains=data["subject"])
        if data["dsn"]:
            messages = messages.filter(dsn=data["dsn"] == "only")
        if data["reason"]:
            messages = messages.filter(reason__icontains=data["reason"])
        if data["state"]:
            messages = messages.filter(state=data["state"])
        if data["age"]:
            now = timezone.now()
            youngest, oldest = AGE_BANDS[data["age"]]
            if youngest is not None:
                messages = messages.filter(created__lte=now - youngest)
            if oldest is not None:
                messages = messages.filter(created__gt=now - oldest)
        if data["size"]:
            smallest, largest = SIZE_BANDS[data["size"]]
            if smallest is not None:
                messages = messages.filter(body_size__gte=smallest)
            if largest is not None:
                messages = messages.filter(body_size__lt=largest)
        order = SORTS.get(data["sort"] or "created", "created")
        # Ties broken by the row id in the same direction: the (server, column) index then yields
        # the rows already in order, instead of a sort of every matching row at every page view.
        return messages.order_by(order, "-pk" if order.startswith("-") else "pk")

    def query_items(self) -> list[tuple[str, str]]:
        """The valid filter values, to carry in links and in the 'all matching' action form."""
        if not self.is_valid():
            return []
        return [(name, self.cleaned_data[name]) for name in self.FILTER_FIELDS if self.cleaned_data[name]]


class SelectedActionForm(forms.Form):
    """An action on listed ids, or on every message matching the filter the page showed."""

    verb = forms.ChoiceField(
        choices=[
            (QueueAction.Verb.QUARANTINE, "Quarantine"),
            (QueueAction.Verb.RELEASE, "Release"),
            (QueueAction.Verb.DELIVER, "Deliver now"),
            (QueueAction.Verb.DELETE, "Delete"),
        ]
    )
    scope = forms.ChoiceField(choices=[("selected", "selected"), ("matching", "all matching")], initial="selected")
    reason = forms.CharField(required=False, strip=False, max_length=REASON_MAX * 4)
    debug_level = forms.CharField(required=False, max_length=40)
    # How many messages the person confirmed acting on ("Delete all 85 matching messages?"): an
    # action on all matching refuses to run when the filter now matches another number.
    confirmed_count = forms.IntegerField(required=False, min_value=0)

    def clean_debug_level(self) -> str:
        return clean_debug_level(self.cleaned_data["debug_level"])

    def clean(self):
        data = super().clean()
        # Ticked rows arrive as repeated "id" values, which a form field cannot hold.
        data["ids"] = list(dict.fromkeys(self.data.getlist("id") if hasattr(self.data, "getlist") else []))
        for queue_id in data["ids"]:
            validate_queue_id(queue_id)
        if data.get("verb") == QueueAction.Verb.QUARANTINE:
            data["reason"] = validate_reason(data.get("reason", ""))
        if data.get("scope") == "selected" and not data.get("ids"):
            raise ValidationError("Select at least one message, or choose all matching.")
        return data


def clean_debug_level(value: str) -> str:
    if value and not DEBUG_LEVEL.fullmatch(value):
        raise ValidationError("A debug level looks like 8.7 or 0-99.1 (digits, '-', '.' and ',').")
    return value


class SelectorActionForm(forms.Form):
    """Actions run by sendmail's own selection: quarantine by -qR/-qS/-qI, process by -qQ / -q!Q."""

    verb = forms.ChoiceField(
        choices=[
            (QueueAction.Verb.QUARANTINE_MATCHING, "Quarantine matching"),
            (QueueAction.Verb.PROCESS_QUARANTINED, "Process quarantined"),
        ]
    )
    selector_kind = forms.ChoiceField(required=False, choices=[("", "—"), *QueueAction.Selector.choices])
    selector = forms.CharField(required=False, strip=False, max_length=SELECTOR_MAX * 100)
    negate = forms.BooleanField(required=False)
    reason = forms.CharField(required=False, strip=False, max_length=REASON_MAX * 100)
    debug_level = forms.CharField(required=False, max_length=40)

    def clean_debug_level(self) -> str:
        return clean_debug_level(self.cleaned_data["debug_level"])

    def clean(self):
        data = super().clean()
        verb = data.get("verb")
        if verb == QueueAction.Verb.QUARANTINE_MATCHING:
            kind = data.get("selector_kind")
            if not kind:
                raise ValidationError("Choose what the selector matches: recipient, sender or queue id.")
            try:
                validate_selector(data.get("selector", ""), kind)
            except ValidationError as exc:
                self.add_error("selector", exc)
            try:
                validate_reason(data.get("reason", ""))
            except ValidationError as exc:
                self.add_error("reason", exc)
        elif verb == QueueAction.Verb.PROCESS_QUARANTINED:
            data["selector_kind"] = ""
            # The reason text to match is typed where a reason belongs: the page's "Reason" box
            # ("selector" still answers, for the API and older pages).
            data["selector"] = data.get("selector") or data.get("reason", "")
            data["reason"] = ""
            try:
                validate_selector(data["selector"], "Q")
            except ValidationError as exc:
                self.add_error("reason", exc)
        return data


class AlertSettingsForm(forms.ModelForm):
    class Meta:
        model = QueueAlertSettings
        fields = ["max_messages", "max_oldest_hours", "max_quarantined"]
        labels = {
            "max_messages": "Queue size above",
            "max_oldest_hours": "Oldest message older than (hours)",
            "max_quarantined": "Quarantined messages above",
        }
