"""`Authorization: Bearer <token>` for DRF: a refused token is a 401 with the reason as JSON."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from api import tokens
from mailadmin import work


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        kind, _, text = header.partition(" ")
        if kind != self.keyword:
            return None
        try:
            token = tokens.check(text.strip())
        except tokens.TokenRefused as refusal:
            raise exceptions.AuthenticationFailed(str(refusal)) from None
        request._request.api_token = token
        # Every audit row of this call, and every work row it creates (whose worker's audit rows
        # read it back from the row), names the token.
        work.acting_api_token.set(str(token))
        return token.user, token

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "mta_<prefix>_<secret>, from the Account page"}
