"""Celery tasks: one line each, over the performers in mailadmin/mta/jobs.py (the host's agent) and
mailadmin/agents.py (the central worker). Only workers import this module."""

from celery import shared_task
from celery.signals import worker_init, worker_ready

from mailadmin import agents, work
from mailadmin.models import AgentRequest, ConfigBuild, InstallJob, MailServer, ServiceAction
from mailadmin.mta import (
    addresstest,  # noqa: F401  (registers its answer to AgentRequest rows)
    agent,
    answers,
    jobs,
    mapsource,  # noqa: F401  (registers its answer to AgentRequest rows)
    report,
    snapshot,
)


@shared_task(name="mailadmin.tasks.run_service_action")
def run_service_action(pk: int) -> str:
    return work.execute(ServiceAction, pk, jobs.perform_service_action)


@shared_task(name="mailadmin.tasks.sweep_work")
def sweep_work() -> dict:
    return work.sweep()


@shared_task(name="mailadmin.tasks.run_config_build")
def run_config_build(pk: int) -> str:
    return work.execute(ConfigBuild, pk, jobs.perform_config_build)


@shared_task(name="mailadmin.tasks.run_install")
def run_install(pk: int) -> str:
    return work.execute(InstallJob, pk, jobs.perform_install)


@shared_task(name="mailadmin.tasks.run_agent_request")
def run_agent_request(pk: int) -> str:
    return work.execute(AgentRequest, pk, answers.perform)


# Only workers import this module (Celery's autodiscovery, before worker_init is sent), so the
# web tier never loads the agent's configuration.
@worker_init.connect
def serve_this_hosts_instances(**kwargs) -> None:
    """A worker started with MAILADMIN_AGENT_CONFIG is that host's agent (before its pool forks)."""
    agent.serve_from_environment()


@worker_ready.connect
def report_to_the_console(**kwargs) -> None:
    """An agent that (re)starts tells the console what it serves, then what it sees (a snapshot of
    each approved instance at once, instead of at the next poll)."""
    if not agent.configs():
        return
    report.send_all()
    for server in MailServer.objects.filter(name__in=agent.served(), host__approved_at__isnull=False):
        agents.publish_snapshot(server)


@shared_task(name="mailadmin.tasks.take_snapshot")
def take_snapshot(server_pk: int) -> str:
    """In the host's agent (its queue mta.<host>): write the instance's HostSnapshot row."""
    server = MailServer.objects.select_related("host").filter(pk=server_pk).first()
    if server is None:
        return "no such server"
    snapshot.take(server)
    return "taken"


@shared_task(name="mailadmin.tasks.poll_agents")
def poll_agents() -> int:
    """Beat, on the central queue: ask every approved host's agent for a snapshot of each instance."""
    return agents.poll()
