from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailadmin import config, hosts
from mailadmin.management.commands.importmc import import_map_files
from mailadmin.models import MailServer
from mailadmin.mta import agent, instance, report
from mailadmin.mta.gateway import Mta, MtaError


class Command(BaseCommand):
    help = (
        "Create (or refresh) the embedded sendmail instance under var/instances/NAME, write the local "
        "agent's configuration for it (var/agent.toml) and register the local host, approved."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", default="local")
        parser.add_argument("--port", type=int, default=settings.MAILADMIN_LOCAL_PORT)

    def handle(self, *args, name, port, **options):
        root = Path(settings.MAILADMIN_INSTANCES_DIR) / name
        try:
            embedded = instance.embedded_instance(name, root, port)
            host_config = instance.write_agent_config(Path(settings.MAILADMIN_AGENT_CONFIG), name, [embedded])
        except (instance.InstanceError, agent.AgentConfigError) as exc:
            raise CommandError(str(exc)) from exc
        agent.serve(host_config)
        try:
            # The person running `make run` installs the console on this host: the local host is approved.
            report.send(host_config, approve_as="setuplocal")
        except hosts.JoinRefused as exc:
            raise CommandError(str(exc)) from exc
        server = MailServer.objects.get(name=name)
        try:
            instance.prepare(server, Mta(server))
        except (MtaError, instance.InstanceError) as exc:
            raise CommandError(f"instance {name}: {exc}") from exc
        if not server.mc_template:
            # First run: the base .mc becomes the rows the console edits; later runs keep the admin's rows.
            config.import_mc(server, Path(server.mc_path).read_text())
            config.import_access(server, Path(server.access_path).read_text())
            for line in import_map_files(server, Path(server.conf_dir)):
                self.stdout.write(line)
        self.stdout.write(
            f"instance {name} ready: {server.cf_path} (port {server.smtp_port}); agent config {host_config.path}"
        )
