"""OpenAPI parameters derived from the page's own filter forms: one definition of each filter."""

from __future__ import annotations

from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter


def form_parameters(form_class: type[forms.Form], *extra: OpenApiParameter) -> list[OpenApiParameter]:
    """A query parameter per form field. An empty value means "any", as on the page, so every
    parameter admits it; dates are strings in the form's own formats (the form judges them)."""
    parameters = []
    for name, field in form_class.base_fields.items():
        enum = None
        kind = OpenApiTypes.STR
        description = str(field.label or field.help_text or name)
        if isinstance(field, forms.ModelChoiceField):
            description += " (a host's name)"
        elif isinstance(field, forms.ChoiceField):
            enum = [str(value) for value, _ in field.choices]
            if not field.required and "" not in enum:
                enum.insert(0, "")
        elif isinstance(field, forms.DateTimeField):
            description += " (YYYY-MM-DD HH:MM or ISO 8601)"
        elif isinstance(field, forms.DateField):
            description += " (YYYY-MM-DD)"
        parameters.append(
            OpenApiParameter(name, kind, OpenApiParameter.QUERY, required=False, enum=enum, description=description)
        )
    return [*parameters, *extra]


CURSOR = OpenApiParameter(
    "cursor", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False, description="From the last page's `next`."
)


ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
REFUSAL = {
    "type": "object",
    "description": "Each refused field (or non_field_errors) with the page's own messages; for a list or "
    "object field, the messages by item.",
    "additionalProperties": {"anyOf": [{"type": "array"}, {"type": "object"}]},
}
COMMON_ERRORS = {
    "400": (
        "The request was refused: each field at fault named, or (a body that is not JSON) a detail.",
        {"anyOf": [REFUSAL, ERROR]},
    ),
    "401": ("No credentials, or a token that is malformed, wrong, expired, revoked or of a deactivated user.", ERROR),
    "403": ("The token lacks the scope, or its user's role (now) is below it.", ERROR),
    "404": ("No such object on the hosts this call may see.", ERROR),
}


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation documents the refusals it can answer with."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for code, (description, schema) in COMMON_ERRORS.items():
                responses.setdefault(
                    code, {"description": description, "content": {"application/json": {"schema": schema}}}
                )
    return result


def form_body(form_class: type[forms.Form]) -> dict:
    """A JSON request body with the page form's fields, as an `extend_schema(request=...)` value. The
    form judges the values as leniently as the page does ("365" and 365 alike), so only its choices
    are spelled out."""
    properties = {}
    for name, field in form_class.base_fields.items():
        schema: dict = {"description": str(field.label or name)}
        if isinstance(field, forms.ChoiceField) and not isinstance(
            field, (forms.ModelChoiceField, forms.TypedChoiceField)
        ):
            schema["enum"] = [str(value) for value, _ in field.choices]
            if not field.required and "" not in schema["enum"]:
                schema["enum"].insert(0, "")
        elif isinstance(field, forms.ModelChoiceField):
            schema["description"] += " (the row's id)"
        properties[name] = schema
    required = [name for name, field in form_class.base_fields.items() if field.required]
    return {"application/json": {"type": "object", "properties": properties, "required": required}}
