"""The Account page's API tokens: a user makes, lists and revokes their own (POST, CSRF, audited)."""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET, require_POST

from api import tokens
from api.forms import TokenForm
from api.models import ApiToken
from mailadmin import audit
from mailadmin.roles import Role, require_role
from mailadmin.views import render_page

NEW_TOKEN_KEY = "api_new_token"


def _page(request: HttpRequest, form: TokenForm, new_token: str = "") -> HttpResponse:
    context = {
        "form": form,
        "new_token": new_token,
        "tokens": ApiToken.objects.filter(user=request.user).prefetch_related("servers"),
    }
    return render_page(request, "api/tokens.html", context, section="account")


@require_role(Role.VIEWER)
@require_GET
def token_list(request: HttpRequest) -> HttpResponse:
    # Shown once: taken out of the session by the first page view after it was made.
    return _page(request, TokenForm(request.user), new_token=request.session.pop(NEW_TOKEN_KEY, ""))


@require_role(Role.VIEWER)
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.user, request.POST)
    if not form.is_valid():
        return _page(request, form)
    data = form.cleaned_data
    with transaction.atomic():
        made = tokens.create(
            request.user, name=data["name"], scopes=data["scopes"], days=data["days"], servers=list(data["servers"])
        )
        audit.record(
            "create API token",
            request=request,
            target=str(made.row),
            detail=f"scopes: {' '.join(made.row.scopes)}; hosts: {' '.join(s.name for s in data['servers']) or 'all'}; "
            f"expires {made.row.expires_at:%Y-%m-%d %H:%M}",
        )
    # The page after the redirect shows it once (a reload then cannot make a second token); the
    # database keeps only its hash.
    request.session[NEW_TOKEN_KEY] = made.text
    return redirect("api:tokens")


@require_role(Role.VIEWER)
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if tokens.revoke(token):
        audit.record("revoke API token", request=request, target=str(token))
        messages.success(request, f"Token {token} revoked.")
    return redirect("api:tokens")
