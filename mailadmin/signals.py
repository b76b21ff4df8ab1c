"""Audit rows for what happens inside Django's and django-axes' login machinery: every failed
password login and every lockout (connected in MailadminConfig.ready). The password is never
recorded; the attempted user name goes in the row's target."""

from __future__ import annotations

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver

from mailadmin import audit
from mailadmin.models import AuditEvent


def _attempted_username(credentials: dict | None, request) -> str:
    username = (credentials or {}).get("username")
    if username is None and request is not None:
        username = request.POST.get("username", "")
    return str(username or "")


@receiver(user_login_failed, dispatch_uid="mailadmin-audit-login-failed")
def audit_login_failed(sender, credentials=None, request=None, **kwargs):
    # django-axes' own receiver ran first (its app is listed before ours): it has counted this
    # failure (axes_failures_since_start) unless the name was already locked out, in which case its
    # backend refused before the password was even checked.
    counted = getattr(request, "axes_failures_since_start", None)
    if getattr(request, "axes_locked_out", False) and counted is None:
        detail = "refused: locked out (the password was not checked)"
    elif counted is not None:
        detail = f"wrong user name or password (failure {counted} of {settings.AXES_FAILURE_LIMIT})"
    else:
        detail = "wrong user name or password"
    audit.record(
        "log in failed",
        request=request,
        target=_attempted_username(credentials, request),
        outcome=AuditEvent.Outcome.FAILED,
        detail=detail,
    )


@receiver(user_locked_out, dispatch_uid="mailadmin-audit-lockout")
def audit_lockout(sender, request=None, username=None, ip_address=None, **kwargs):
    # django-axes sends this again for each attempt while locked out; only the attempt that
    # reached the limit (the one it counted) is the lockout itself.
    if getattr(request, "axes_failures_since_start", None) is None:
        return
    audit.record(
        "lockout",
        request=request,
        target=str(username or ""),
        outcome=AuditEvent.Outcome.DENIED,
        detail=(
            f"{request.axes_failures_since_start} failed logins from {ip_address}: locked out until an "
            "administrator lifts it (Users page)"
        ),
    )
