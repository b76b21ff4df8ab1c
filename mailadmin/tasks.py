"""Celery tasks: thin wrappers that load a work row, claim it and call the domain function."""

from celery import shared_task

from mailadmin import audit, daemon, work
from mailadmin.gateway import Mta
from mailadmin.models import AuditEvent, ServiceAction


def perform_service_action(action: ServiceAction) -> None:
    mta = Mta(action.server, user=action.created_by)

    def progress(percent: int, note: str) -> None:
        work.report_progress(action, percent, note)

    try:
        outcome = daemon.VERBS[action.verb](action.server, mta, progress)
    except Exception as exc:
        audit.record(
            f"daemon {action.verb}",
            user=action.created_by,
            server=action.server,
            target=f"service action {action.pk}",
            outcome=AuditEvent.Outcome.FAILED,
            detail=str(exc),
        )
        raise
    work.finish(action, work.WorkStatus.DONE, output=outcome)
    audit.record(
        f"daemon {action.verb}",
        user=action.created_by,
        server=action.server,
        target=f"service action {action.pk}",
        detail=outcome,
    )


@shared_task(name="mailadmin.tasks.run_service_action")
def run_service_action(pk: int) -> str:
    return work.execute(ServiceAction, pk, perform_service_action)


@shared_task(name="mailadmin.tasks.sweep_work")
def sweep_work() -> dict:
    return work.sweep()
