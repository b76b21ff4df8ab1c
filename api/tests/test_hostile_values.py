"""A hostile value gets the page's own refusal through the API: JSON, the field named, the same words,
and nothing queued. What the page's validator accepts, the API accepts too."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from mailqueue.forms import QueueFilterForm, validate_reason
from mailqueue.models import QueueAction
from testing.api import call, make_token
from testing.hostile_values import hostile_values


def page_refusal(validator, value) -> list[str] | None:
    try:
        validator(value)
    except ValidationError as refusal:
        return refusal.messages
    return None


def test_a_hostile_quarantine_reason_gets_the_pages_refusal_naming_the_field(operator, remote, tmp_path):
    token = make_token(operator, "queue:write")
    refused = 0
    for value in hostile_values(str(tmp_path / "canary")):
        body = {"verb": "quarantine", "ids": ["6AOIGq4n025795"], "reason": value}
        response = call("POST", "/api/v1/servers/remote/queue/", token, body)
        assert response.status_code == 400, value
        expected = page_refusal(validate_reason, value)
        if expected is None:  # a harmless reason: refused only for the id the index does not hold
            assert set(response.json()) == {"ids"}, value
        else:
            assert response.json() == {"reason": expected}, value
            refused += 1
    assert refused > 50
    assert not QueueAction.objects.exists()
    assert not (tmp_path / "canary").exists()


def test_hostile_queue_ids_and_filters_are_refused_by_field(operator, remote):
    token = make_token(operator, "queue:read", "queue:write")
    for bad_id in ("-qIx", "6AOIGq4n02579\n5", "../../etc/passwd", "x" * 300):
        response = call("POST", "/api/v1/servers/remote/queue/", token, {"verb": "delete", "ids": [bad_id]})
        assert response.status_code == 400 and list(response.json()) == ["ids"], bad_id
    for bad_filter in ("evil\nline", "x" * 1000, "tab\there"):
        form = QueueFilterForm({"sender": bad_filter})
        assert not form.is_valid()
        response = call("GET", "/api/v1/servers/remote/queue/", token, None, query={"sender": bad_filter})
        assert response.status_code == 400
        assert response.json() == {"sender": [str(error) for error in form.errors["sender"]]}
        body = {"verb": "delete", "filter": {"sender": bad_filter}}
        response = call("POST", "/api/v1/servers/remote/queue/", token, body)
        assert response.status_code == 400 and list(response.json()) == ["sender"]
    response = call("POST", "/api/v1/servers/remote/queue/", token, {"verb": "delete", "filter": {}})
    assert response.status_code == 400 and list(response.json()) == ["filter"]
    response = call("POST", "/api/v1/servers/remote/queue/", token, {"verb": "explode", "ids": []})
    assert response.status_code == 400 and "verb" in response.json()
    assert not QueueAction.objects.exists()
