from django.conf import settings
from django.core.management.base import BaseCommand

from mailadmin.models import MailServer


class Command(BaseCommand):
    help = "Print the Celery queues a worker on this host consumes: the default one and each server's."

    def handle(self, *args, **options):
        queues = [settings.CELERY_TASK_DEFAULT_QUEUE]
        queues += [q for q in MailServer.objects.values_list("celery_queue", flat=True) if q not in queues]
        self.stdout.write(",".join(queues))
