from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailadmin import config
from mailadmin.models import MailServer
from mailadmin.mta import instance
from mailadmin.mta.gateway import Mta, MtaError


class Command(BaseCommand):
    help = "Create (or refresh) an embedded sendmail instance under var/instances/NAME."

    def add_arguments(self, parser):
        parser.add_argument("--name", default="local")
        parser.add_argument("--port", type=int, default=settings.MAILADMIN_LOCAL_PORT)

    def handle(self, *args, name, port, **options):
        root = Path(settings.MAILADMIN_INSTANCES_DIR) / name
        try:
            defaults = instance.embedded_defaults(name, root, port)
        except instance.InstanceError as exc:
            raise CommandError(str(exc)) from exc
        server, created = MailServer.objects.update_or_create(name=name, defaults=defaults)
        try:
            instance.prepare(server, Mta(server))
        except (MtaError, instance.InstanceError) as exc:
            raise CommandError(f"instance {name}: {exc}") from exc
        if not server.mc_template:
            # First run: the base .mc becomes the rows the console edits; later runs keep the admin's rows.
            config.import_mc(server, Path(server.mc_path).read_text())
            config.import_access(server, Path(server.access_path).read_text())
        verb = "created" if created else "ready"
        self.stdout.write(f"instance {name} {verb}: {server.cf_path} (port {server.smtp_port})")
