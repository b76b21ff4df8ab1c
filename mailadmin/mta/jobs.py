"""The performers of mailadmin's work rows, in the host's agent: daemon actions, cf builds and
installs. Each claims nothing itself (work.execute does) and finishes through audit.run_work;
after a change it refreshes the instance's snapshot so the dashboard shows the outcome at once."""

from __future__ import annotations

import logging

from mailadmin import audit, buildrows, work
from mailadmin.models import ConfigBuild, InstallJob, MailServer, ServiceAction
from mailadmin.mta import cfbuild, daemon, gateway, snapshot

log = logging.getLogger(__name__)


def perform_service_action(action: ServiceAction) -> None:
    mta = gateway.mta_for(action)

    def progress(percent: int, note: str) -> None:
        work.report_progress(action, percent, note)

    def perform() -> tuple[str, dict]:
        outcome = daemon.VERBS[action.verb](action.server, mta, progress)
        return outcome, {"output": outcome}

    try:
        audit.run_work(action, f"daemon {action.verb}", f"service action {action.pk}", perform)
    finally:
        refresh_snapshot(action.server)


def perform_config_build(row: ConfigBuild) -> None:
    mta = gateway.mta_for(row)
    cfbuild.build(row, mta, lambda pct, note: work.report_progress(row, pct, note))


def perform_install(job: InstallJob) -> None:
    mta = gateway.mta_for(job)

    def perform() -> tuple[str, dict]:
        outcome = cfbuild.install(job, mta, lambda pct, note: work.report_progress(job, pct, note))
        if job.rollback:
            outcome += "; " + restore_rows(job)
        return outcome, {"output": outcome}

    try:
        audit.run_work(job, f"cf {'rollback' if job.rollback else 'install'}", job.build.build_id, perform)
    finally:
        refresh_snapshot(job.server)


def restore_rows(job: InstallJob) -> str:
    """After a rollback, the rows say again what the installed build was made from, or the next
    build would silently bring the rolled-back change back."""
    if buildrows.restore(job.server, job.build, user=job.created_by):
        return f"the options, FEATUREs, access, map and listener rows are those {job.build.build_id} was made from"
    return f"the rows were left as they are: {job.build.build_id} kept none (a configuration found on the host)"


def refresh_snapshot(server: MailServer) -> None:
    """After a change, best effort: the dashboard shows its outcome at once, not at the next poll."""
    try:
        snapshot.take(server)
    except Exception:
        log.warning("no snapshot of %s after the change", server.name, exc_info=True)
