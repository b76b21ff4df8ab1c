"""Making and checking API tokens, and what each scope needs.

A token is `mta_<prefix>_<secret>`: the prefix finds the row, the secret (32 random bytes) is
compared as a SHA-256 in constant time. A scope names what a token may do; the role it needs is
checked against the user's role at the time of each call, so a demoted user's tokens shrink.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from api.models import ApiToken
from mailadmin.models import MailServer
from mailadmin.roles import Role

SCOPES: dict[str, Role] = {
    "queue:read": Role.VIEWER,
    "queue:write": Role.OPERATOR,
    "config:read": Role.VIEWER,
    "config:build": Role.ADMINISTRATOR,
    "config:install": Role.ADMINISTRATOR,
    "tls:read": Role.VIEWER,
    "tls:write": Role.ADMINISTRATOR,
    "trace:read": Role.VIEWER,
    "audit:read": Role.VIEWER,
}
TOKEN_PREFIX = "mta"
# A busy script calls many times a minute; the row is written at most once a minute.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenRefused(Exception):
    """Why a presented token does not authenticate, worded for the caller."""


@dataclass(frozen=True)
class NewToken:
    row: ApiToken
    text: str  # shown once, never stored


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def max_days() -> int:
    return settings.API_TOKEN_MAX_DAYS


def scopes_within_role(role: Role | None) -> list[str]:
    return [scope for scope, needed in SCOPES.items() if role is not None and role >= needed]


def create(user, *, name: str, scopes: list[str], days: int, servers: list[MailServer] = ()) -> NewToken:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"Unknown scope(s): {', '.join(unknown)}" if unknown else "A token needs at least one scope.")
    if not 1 <= days <= max_days():
        raise ValueError(f"A token lives 1 to {max_days()} days.")
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with transaction.atomic():
        row = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=prefix,
            secret_sha256=digest(secret),
            scopes=sorted(set(scopes), key=list(SCOPES).index),
            expires_at=timezone.now() + timedelta(days=days),
        )
        row.servers.set(servers)
    return NewToken(row, f"{TOKEN_PREFIX}_{prefix}_{secret}")


def check(text: str) -> ApiToken:
    """The token row `text` names, if it may be used now; TokenRefused otherwise."""
    kind, _, rest = text.partition("_")
    prefix, _, secret = rest.partition("_")
    if kind != TOKEN_PREFIX or not prefix or not secret:
        raise TokenRefused("Malformed token: expected mta_<prefix>_<secret>.")
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    # Compared even when no row matched, so a wrong prefix takes as long as a wrong secret.
    expected = token.secret_sha256 if token else digest("")
    if not hmac.compare_digest(expected, digest(secret)) or token is None:
        raise TokenRefused("Invalid token.")
    if token.revoked_at is not None:
        raise TokenRefused("This token was revoked.")
    if token.expires_at <= timezone.now():
        raise TokenRefused("This token has expired.")
    if not token.user.is_active:
        raise TokenRefused("This token's user is deactivated.")
    note_use(token)
    return token


def note_use(token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


def allows(token: ApiToken | None, user, scope: str) -> bool:
    """May this call use `scope`? The user's role now must reach the scope's role, and a token
    must carry the scope; a session (no token) goes by the role alone."""
    from mailadmin.roles import has_role

    if not has_role(user, SCOPES[scope]):
        return False
    return token is None or scope in token.scopes


def servers_for(token: ApiToken | None):
    """The hosts a call may see: the token's list, or every host."""
    if token is not None:
        limited = list(token.servers.all())
        if limited:
            return MailServer.objects.filter(pk__in=[s.pk for s in limited])
    return MailServer.objects.all()


def revoke(token: ApiToken) -> bool:
    return bool(ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=timezone.now()))
