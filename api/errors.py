"""Refusals as JSON: a form's errors keyed by the field they belong to, the way the page shows them."""

from __future__ import annotations

from rest_framework import exceptions


def valid_or_400(form):
    """The form's cleaned data; a 400 naming each refused field otherwise (the page's own messages)."""
    if not form.is_valid():
        errors = form.errors.get_json_data()
        raise exceptions.ValidationError(
            {
                "non_field_errors" if field == "__all__" else field: [error["message"] for error in field_errors]
                for field, field_errors in errors.items()
            }
        )
    return form.cleaned_data
