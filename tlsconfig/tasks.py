"""Celery tasks of the certificate store: thin wrappers over tlsconfig.jobs, tlsconfig.agentside and the work rows.

Generation and the expiry check run on the central worker; deployments and the agent's answers
(STARTTLS probe, probe message) run in the agent of the server's host.
"""

from celery import shared_task

from mailadmin import work
from tlsconfig import agentside, jobs
from tlsconfig.models import Deployment, TlsJob


@shared_task(name="tlsconfig.tasks.run_tls_job")
def run_tls_job(pk: int) -> str:
    return work.execute(TlsJob, pk, jobs.perform_tls_job)


@shared_task(name="tlsconfig.tasks.run_deployment")
def run_deployment(pk: int) -> str:
    return work.execute(Deployment, pk, agentside.perform_deployment)


@shared_task(name="tlsconfig.tasks.check_expiry")
def check_expiry() -> dict:
    return jobs.check_expiry()
