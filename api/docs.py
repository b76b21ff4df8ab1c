"""The browsable docs page: Swagger UI from drf-spectacular-sidecar's vendored files, started by a
static script (the console's CSP allows no inline script or style; drf-spectacular's own template
has both). A console page: it needs a login; the schema it reads does not."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from mailadmin.roles import Role, require_role


@require_role(Role.VIEWER)
@require_GET
def swagger_ui(request: HttpRequest) -> HttpResponse:
    return render(request, "api/docs.html", {"schema_url": reverse("api:schema")})
