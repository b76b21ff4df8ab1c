"""`manage.py importmc PATH [--access FILE] [--maps DIR]`: import a host's sendmail.mc, access map and
map and class files into a server's rows. Run on the MTA host as the postmaster (a management
command may read the host's files; the web tier never does)."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from mailadmin import config, maps
from mailadmin.cf import maps as mapfiles
from mailadmin.models import MailServer


def import_map_files(server: MailServer, directory: Path) -> list[str]:
    """Import each of the eight map and class files found in `directory` (by their fixed names),
    losslessly; a file that is missing is left unmanaged. Returns a line per file for the operator."""
    report = []
    for name in mapfiles.MAP_NAMES:
        path = Path(directory) / name
        if not path.is_file():
            continue
        try:
            text = path.read_bytes().decode()
        except UnicodeDecodeError:
            report.append(f"skipped {path}: not UTF-8 text (importing it would change it)")
            continue
        except OSError as exc:
            report.append(f"skipped {path}: {exc}")
            continue
        try:
            typed, kept = maps.import_text(server, name, text)
        except ValidationError as exc:
            report.append(f"skipped {path}: {' '.join(exc.messages)}")
            continue
        report.append(f"imported {path}: {typed} rows, {kept} lines kept as they were")
    return report


class Command(BaseCommand):
    help = (
        "Import a sendmail.mc into a server's rows: catalog options and FEATUREs become rows, every other "
        "line is kept verbatim and re-emitted in place. With --access, also import an access map source; "
        "with --maps DIR, the map and class files found there (aliases, virtusertable, mailertable, "
        "genericstable, domaintable, local-host-names, relay-domains, trusted-users)."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--server", default="local")
        parser.add_argument("--access", help="access map source file to import as rows")
        parser.add_argument("--maps", help="directory holding the map and class files to import as rows")

    def handle(self, *args, path, server, access, maps, **options):
        try:
            mail_server = MailServer.objects.get(name=server)
        except MailServer.DoesNotExist:
            raise CommandError(f"no server named {server!r}") from None
        if maps and not Path(maps).is_dir():
            raise CommandError(f"--maps {maps}: not a directory")
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
        if maps:
            for line in import_map_files(mail_server, Path(maps)):
                self.stdout.write(line)
