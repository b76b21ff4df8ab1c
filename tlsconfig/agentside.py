"""What the TLS pages need from an MTA host, done by its agent (only tlsconfig/tasks.py imports this).

- "starttls probe": a fresh SMTP session to the instance through STARTTLS, compared with the
  installed cf, the key files and the daemon's log (probe.probe_server), as a JSON-able dict;
- "probe message": one message over STARTTLS, sendmail's own Received line read from the queue
  file, the message removed again (probe.probe_message);
- deployments: the store's certificates and keys written under the instance's certificate
  directory as the host's agent configuration names it.
"""

from __future__ import annotations

from dataclasses import asdict

from mailadmin import audit, work
from mailadmin.models import AuditEvent
from mailadmin.mta.answers import answer, json_safe
from tlsconfig import deploy, probe
from tlsconfig.models import Deployment


@answer("starttls probe")
def answer_starttls_probe(server, params: dict, mta) -> dict:
    seen = probe.probe_server(server, with_client_certificate=bool(params.get("client")))
    return json_safe(probe.report(seen))


@answer("probe message")
def answer_probe_message(server, params: dict, mta) -> dict:
    outcome = probe.probe_message(server, with_client_certificate=bool(params.get("client")), user=mta.user)
    return json_safe(asdict(outcome))


def perform_deployment(row: Deployment) -> None:
    """Runs in the agent of the deployment's host (the row's Celery queue is the server's)."""
    if row.build_id:
        return
    try:
        build = deploy.deploy(row, lambda percent, note: work.report_progress(row, percent, note))
    except Exception as exc:
        audit.record(
            "TLS deploy",
            user=row.created_by,
            server=row.server,
            outcome=AuditEvent.Outcome.FAILED,
            detail=str(exc),
        )
        raise
    row.build = build
    row.save(update_fields=["build", "output"])
    audit.record("TLS deploy", user=row.created_by, server=row.server, target=build.build_id, detail=row.output)
