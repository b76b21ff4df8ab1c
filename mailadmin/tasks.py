"""Celery tasks: thin wrappers that load a work row, claim it and call the domain function."""

from celery import shared_task

from mailadmin import audit, work
from mailadmin.models import ConfigBuild, InstallJob, ServiceAction
from mailadmin.mta import cfbuild, daemon


def perform_service_action(action: ServiceAction) -> None:
    mta = work.mta_for(action)

    def progress(percent: int, note: str) -> None:
        work.report_progress(action, percent, note)

    def perform() -> tuple[str, dict]:
        outcome = daemon.VERBS[action.verb](action.server, mta, progress)
        return outcome, {"output": outcome}

    audit.run_work(action, f"daemon {action.verb}", f"service action {action.pk}", perform)


@shared_task(name="mailadmin.tasks.run_service_action")
def run_service_action(pk: int) -> str:
    return work.execute(ServiceAction, pk, perform_service_action)


@shared_task(name="mailadmin.tasks.sweep_work")
def sweep_work() -> dict:
    return work.sweep()


def perform_config_build(row: ConfigBuild) -> None:
    mta = work.mta_for(row)
    cfbuild.build(row, mta, lambda pct, note: work.report_progress(row, pct, note))


def perform_install(job: InstallJob) -> None:
    mta = work.mta_for(job)

    def perform() -> tuple[str, dict]:
        outcome = cfbuild.install(job, mta, lambda pct, note: work.report_progress(job, pct, note))
        return outcome, {"output": outcome}

    audit.run_work(job, f"cf {'rollback' if job.rollback else 'install'}", job.build.build_id, perform)


@shared_task(name="mailadmin.tasks.run_config_build")
def run_config_build(pk: int) -> str:
    return work.execute(ConfigBuild, pk, perform_config_build)


@shared_task(name="mailadmin.tasks.run_install")
def run_install(pk: int) -> str:
    return work.execute(InstallJob, pk, perform_install)
