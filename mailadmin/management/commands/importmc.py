from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mailadmin import config
from mailadmin.models import MailServer


class Command(BaseCommand):
    help = (
        "Import a sendmail.mc into a server's rows: catalog options and FEATUREs become rows, every other "
        "line is kept verbatim and re-emitted in place. With --access, also import an access map source."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--server", default="local")
        parser.add_argument("--access", help="access map source file to import as rows")

    def handle(self, *args, path, server, access, **options):
        try:
            mail_server = MailServer.objects.get(name=server)
        except MailServer.DoesNotExist:
            raise CommandError(f"no server named {server!r}") from None
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        for note in config.import_mc(mail_server, text):
            self.stdout.write(f"note: {note}")
        self.stdout.write(
            f"imported {path} into {server}: {mail_server.config_values.count()} options, "
            f"{mail_server.features.count()} FEATUREs"
        )
        if access:
            rows = config.import_access(mail_server, Path(access).read_text())
            self.stdout.write(f"imported {access}: {rows} access rows")
