"""MTA hosts joining the console: one-time join tokens, agents' reports, an administrator's approval.

A host's agent reports its instances (read from its own configuration file) when it starts. A
host the console does not know yet must present a one-time join token an administrator printed
(`manage.py jointoken NAME`); it then waits, listed with what it reported, until an
administrator approves it. Only then do its instances become MailServer rows the console shows
and sends work to. Every step is audited, refusals included.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from mailadmin import audit
from mailadmin.models import AgentHost, AuditEvent, JoinToken, MailServer

JOIN_TOKEN_HOURS = 24


class JoinRefused(Exception):
    """An agent's report the console will not take (unknown host without a valid token, a name clash)."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_join_token(host_name: str, *, hours: int = JOIN_TOKEN_HOURS, user=None) -> str:
    """A new one-time token for the host `host_name`; only its hash is kept."""
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        JoinToken.objects.create(
            host_name=host_name, token_sha256=_digest(token), expires=timezone.now() + timedelta(hours=hours)
        )
        audit.record("issue join token", user=user, target=host_name, detail=f"valid for {hours} h")
    return token


def _take_token(host_name: str, token: str) -> bool:
    if not token:
        return False
    now = timezone.now()
    taken = JoinToken.objects.filter(
        host_name=host_name, token_sha256=_digest(token), used_at__isnull=True, expires__gt=now
    ).update(used_at=now)
    return bool(taken)


def receive_report(report: dict, *, join_token: str = "", approve_as: str = "") -> AgentHost:
    """Take an agent's report: {"host", "celery_queue", "instances": {name: fields}, …}.

    A known, approved host has its servers' rows brought up to date. A new host needs a valid
    join token, and then waits for approval. `approve_as` approves at once: only setuplocal
    uses it, for the console's own embedded host, run by the person installing the console.
    """
    name = report["host"]
    with transaction.atomic():
        host = _take_report(report, name, join_token, approve_as)
    if host is None:
        # Audited outside the transaction that refused it, so the refusal is not rolled back with it.
        audit.record(
            "agent join refused",
            target=name,
            outcome=AuditEvent.Outcome.DENIED,
            detail="no valid join token (manage.py jointoken NAME prints one)",
        )
        raise JoinRefused(f"host {name!r} is not known here and presented no valid join token")
    return host


def _take_report(report: dict, name: str, join_token: str, approve_as: str) -> AgentHost | None:
    """The report as rows (in the caller's transaction); None: an unknown host without a valid token."""
    host = AgentHost.objects.select_for_update().filter(name=name).first()
    if host is None:
        verified = _take_token(name, join_token)
        if not verified and not approve_as:
            return None
        host = AgentHost.objects.create(name=name, celery_queue=report["celery_queue"], token_verified=verified)
        audit.record("agent asked to join", target=name, detail=_describe(report))
    elif not host.token_verified and _take_token(name, join_token):
        host.token_verified = True
    host.report = report
    host.celery_queue = report["celery_queue"]
    host.last_seen = timezone.now()
    if approve_as and not host.approved:
        host.approved_at = timezone.now()
        host.token_verified = True
        audit.record("approve host", target=name, detail=f"approved by {approve_as}: {_describe(report)}")
    host.save()
    if host.approved:
        sync_servers(host)
    return host


def _describe(report: dict) -> str:
    lines = [f"queue {report.get('celery_queue')}"]
    for name, fields in sorted(report.get("instances", {}).items()):
        lines.append(f"instance {name}: cf {fields.get('cf_path')}, queue {fields.get('queue_dir')}")
    return "\n".join(lines)


def sync_servers(host: AgentHost) -> list[MailServer]:
    """Bring the host's MailServer rows to what its agent reported (new instances become rows)."""
    servers = []
    for name, fields in sorted(host.report.get("instances", {}).items()):
        clash = MailServer.objects.filter(name=name).exclude(host=host).exclude(host__isnull=True).first()
        if clash is not None:
            audit.record(
                "agent report refused",
                target=f"{host.name}/{name}",
                outcome=AuditEvent.Outcome.DENIED,
                detail=f"an instance named {name} already belongs to host {clash.host}",
            )
            continue
        values = {key: value for key, value in fields.items() if key in SERVER_FIELDS}
        server, _ = MailServer.objects.update_or_create(
            name=name,
            defaults={**values, "host": host, "celery_queue": host.celery_queue, "reported_at": timezone.now()},
        )
        servers.append(server)
    return servers


SERVER_FIELDS = {
    "description",
    "embedded",
    "hostname",
    "conf_dir",
    "mc_path",
    "cf_path",
    "access_path",
    "cert_dir",
    "queue_dir",
    "pid_file",
    "log_file",
    "syslog_tag",
    "sendmail_bin",
    "m4_bin",
    "makemap_bin",
    "cf_tree",
    "smtp_address",
    "smtp_port",
    "queue_interval",
    "roots",
    "reserved_words",
}


def approve(host: AgentHost, *, request=None, user=None) -> list[MailServer]:
    """An administrator takes a host that asked to join (with a valid token) into the console."""
    if not host.token_verified:
        raise JoinRefused(f"host {host.name} did not present a valid join token; issue one and restart its agent")
    with transaction.atomic():
        host.approved_at = timezone.now()
        host.approved_by = user or getattr(request, "user", None)
        host.save(update_fields=["approved_at", "approved_by"])
        servers = sync_servers(host)
        audit.record("approve host", request=request, user=user, target=host.name, detail=_describe(host.report))
    return servers


def seen(host_name: str) -> None:
    AgentHost.objects.filter(name=host_name).update(last_seen=timezone.now())
