"""Every API view declares the scope each of its methods needs (`scopes = {"GET": ..., "POST": ...}`);
the call passes when the token carries the scope and the user's role now reaches it (a session:
the role alone). A refusal is audited like a page's."""

from __future__ import annotations

from rest_framework import permissions

from api import tokens
from mailadmin import audit
from mailadmin.models import AuditEvent


def scope_of(view, method: str) -> str | None:
    scopes = getattr(view, "scopes", {})
    return scopes.get("GET" if method in ("HEAD", "OPTIONS") else method)


class ScopePermission(permissions.BasePermission):
    message = "This call needs a scope or role this token or user does not have."

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        scope = scope_of(view, request.method)
        if scope is None:  # a method the view does not declare is refused, never open
            return False
        if tokens.allows(request.auth if hasattr(request.auth, "scopes") else None, request.user, scope):
            return True
        self.message = f"This call needs the {scope} scope and the {tokens.SCOPES[scope].group_name} role."
        audit.record(
            "permission denied",
            request=request,
            target=f"{request.method} {request.path}",
            outcome=AuditEvent.Outcome.DENIED,
            detail=f"needs scope {scope} (role {tokens.SCOPES[scope].group_name})",
        )
        return False
