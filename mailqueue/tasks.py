"""Celery tasks for the queue: thin wrappers that claim a work row and call the domain functions."""

from celery import shared_task

from mailadmin import audit, work
from mailadmin.models import MailServer
from mailqueue import actions, index, stats
from mailqueue.models import QueueAction


def perform_queue_action(action: QueueAction) -> None:
    mta = work.mta_for(action)

    def perform() -> tuple[str, dict]:
        actions.perform(action, mta, lambda pct, note: work.report_progress(action, pct, note))
        counts = ", ".join(f"{count} {word}" for word, count in action.outcome_counts().items())
        fields = {name: getattr(action, name) for name in ("commands", "outcomes", "output", "debug_log")}
        return counts, fields

    audit.run_work(action, f"queue {action.verb}", f"queue action {action.pk}: {action.target_text}", perform)


@shared_task(name="mailqueue.tasks.run_queue_action")
def run_queue_action(pk: int) -> str:
    return work.execute(QueueAction, pk, perform_queue_action)


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
    return index.refresh(server).files_read if server else 0


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
    return stats.take_sample(server).messages if server else 0
