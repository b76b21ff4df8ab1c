"""Celery tasks of tracking: one line each. Only workers import this module."""

from celery import shared_task

from mailadmin.models import MailServer
from tracking import agentside, retention


@shared_task(name="tracking.tasks.poll_logs")
def poll_logs() -> int:
    """Beat, central: ring each approved host's agent to read its instances' logs on."""
    return retention.publish_ingests()


@shared_task(name="tracking.tasks.ingest_log")
def ingest_log(server_pk: int) -> int:
    """In the host's agent: read the instance's log on from its checkpoint."""
    server = MailServer.objects.filter(pk=server_pk).first()
    return agentside.ingest(server).lines_read if server else 0


@shared_task(name="tracking.tasks.purge_traces")
def purge_traces() -> int:
    """Beat, central: delete traces and log lines older than TRACE_RETENTION_DAYS."""
    return retention.purge()
