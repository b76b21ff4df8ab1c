"""Roles are Django groups: viewer reads, operator also acts on the queue, administrator does everything."""

from __future__ import annotations

from enum import IntEnum
from functools import wraps

from django.core.exceptions import PermissionDenied


class Role(IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMINISTRATOR = 3

    @property
    def group_name(self) -> str:
        return self.name.lower()


def role_of(user) -> Role | None:
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMINISTRATOR
    cached = getattr(user, "_mailadmin_role", False)
    if cached is not False:
        return cached
    names = set(user.groups.values_list("name", flat=True))
    role = max((r for r in Role if r.group_name in names), default=None)
    user._mailadmin_role = role
    return role


def has_role(user, needed: Role) -> bool:
    role = role_of(user)
    return role is not None and role >= needed


def require_role(needed: Role):
    """View decorator: 403 (and an audit row) unless the user holds at least `needed`."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not has_role(request.user, needed):
                from mailadmin import audit
                from mailadmin.models import AuditEvent

                audit.record(
                    "permission denied",
                    request=request,
                    target=f"{request.method} {request.path}",
                    outcome=AuditEvent.Outcome.DENIED,
                    detail=f"needs role {needed.group_name}",
                )
                raise PermissionDenied(f"This needs the {needed.group_name} role.")
            return view(request, *args, **kwargs)

        wrapper.required_role = needed
        return wrapper

    return decorate
