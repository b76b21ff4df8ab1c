import signal
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailadmin.mta import logsink


class Command(BaseCommand):
    help = "Receive syslog datagrams on /dev/log (when no syslog daemon does) and append them to a file."

    def add_arguments(self, parser):
        parser.add_argument("--socket", default="/dev/log")
        parser.add_argument("--file", default=str(settings.MAILADMIN_LOG_SINK))

    def handle(self, *args, socket, file, **options):
        # SIGTERM unwinds through serve()'s finally, which removes the socket.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            logsink.serve(socket, Path(file))
        except logsink.SinkError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            pass
