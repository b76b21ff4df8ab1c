"""Pages that continue from the last row shown (a cursor), for any sort the list page offers.

The cursor holds the last row's sort value and id; the next page is the rows after that pair, so a
page costs the same deep in a large queue, and rows that share a value (5,000 messages from one
sender) or have none (a message whose creation time could not be read) are neither skipped nor
repeated. NULLs sort first going up and last going down, on every database.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import F, Q, QuerySet
from rest_framework import exceptions

PAGE_SIZE = 50


def _encode(value, pk: int) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps({"v": value, "pk": pk}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[object, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or not isinstance(data.get("pk"), int):
            raise ValueError
        return data.get("v"), data["pk"]
    except (ValueError, TypeError):
        raise exceptions.ValidationError({"cursor": ["Not a cursor this API gave out."]}) from None


def _after(field: str, descending: bool, value, pk: int) -> Q:
    if not descending:  # NULLs first, then values going up
        if value is None:
            return Q(**{f"{field}__isnull": True, "pk__gt": pk}) | Q(**{f"{field}__isnull": False})
        return Q(**{f"{field}__gt": value}) | Q(**{field: value, "pk__gt": pk})
    if value is None:  # values going down, then NULLs
        return Q(**{f"{field}__isnull": True, "pk__lt": pk})
    return Q(**{f"{field}__lt": value}) | Q(**{field: value, "pk__lt": pk}) | Q(**{f"{field}__isnull": True})


def page(rows: QuerySet, sort: str, cursor: str = "") -> tuple[list, str]:
    """One page of `rows` by `sort` ("created", "-created", …) after `cursor`, and the next cursor ("" at the end)."""
    descending, field = sort.startswith("-"), sort.lstrip("-")
    if descending:
        ordered = rows.order_by(F(field).desc(nulls_last=True), "-pk")
    else:
        ordered = rows.order_by(F(field).asc(nulls_first=True), "pk")
    if cursor:
        value, pk = _decode(cursor)
        try:
            ordered = ordered.filter(_after(field, descending, value, pk))
        except (ValidationError, ValueError, TypeError):
            raise exceptions.ValidationError({"cursor": ["This cursor belongs to another sort."]}) from None
    try:
        found = list(ordered[: PAGE_SIZE + 1])
    except (ValidationError, ValueError, TypeError):
        raise exceptions.ValidationError({"cursor": ["This cursor belongs to another sort."]}) from None
    more, found = len(found) > PAGE_SIZE, found[:PAGE_SIZE]
    last = found[-1] if more else None
    return found, _encode(getattr(last, field), last.pk) if last is not None else ""


def next_link(request, cursor: str) -> str | None:
    if not cursor:
        return None
    query = request.query_params.copy()
    query["cursor"] = cursor
    return f"{request.path}?{query.urlencode()}"
