"""Celery tasks for the queue: thin wrappers that claim a work row and call the domain functions.

Only workers import this module; the ones that touch a spool run in the agent of the server's
host (its Celery queue), where the server row is bound to the host's own configuration first.
"""

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from mailadmin import work
from mailadmin.models import MailServer
from mailadmin.mta import agent
from mailqueue import agentside, follower, index, sampling
from mailqueue.models import QueueAction


@shared_task(name="mailqueue.tasks.run_queue_action")
def run_queue_action(pk: int) -> str:
    return work.execute(QueueAction, pk, agentside.perform_queue_action)


@worker_ready.connect
def follow_the_spools(**kwargs) -> None:
    """An agent refreshes its index within seconds of a change on its spool (mailqueue/follower.py)."""
    if agent.configs() and settings.QUEUE_INDEX_WATCH:
        follower.start()


@shared_task(name="mailqueue.tasks.refresh_indexes")
def refresh_indexes() -> int:
    """Beat: ask each server's own worker (the one that can read its spool) to refresh its index."""
    servers = list(MailServer.objects.all())
    for server in servers:
        refresh_index.apply_async(args=[server.pk], queue=server.celery_queue)
    return len(servers)


@shared_task(name="mailqueue.tasks.refresh_index")
def refresh_index(server_pk: int) -> int:
    server = MailServer.objects.filter(pk=server_pk).first()
    if server is None:
        return 0
    return index.refresh(agent.bind(server)).files_read


@shared_task(name="mailqueue.tasks.sample_queues")
def sample_queues() -> int:
    """Beat: ask each server's worker for a statistics sample (and the alert check that goes with it)."""
    servers = list(MailServer.objects.all())
    for server in servers:
        sample_queue.apply_async(args=[server.pk], queue=server.celery_queue)
    return len(servers)


@shared_task(name="mailqueue.tasks.sample_queue")
def sample_queue(server_pk: int) -> int:
    server = MailServer.objects.filter(pk=server_pk).first()
    return sampling.take_sample(agent.bind(server)).messages if server else 0
