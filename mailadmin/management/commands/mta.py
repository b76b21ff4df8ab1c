from django.core.management.base import BaseCommand, CommandError

from mailadmin.models import MailServer
from mailadmin.mta import agent, daemon
from mailadmin.mta.gateway import Mta, MtaError


class Command(BaseCommand):
    help = "Start, stop, restart, reload or show the sendmail daemon of a managed server."

    def add_arguments(self, parser):
        parser.add_argument("verb", choices=[*daemon.VERBS, "status"])
        parser.add_argument("--server", default="local")

    def handle(self, *args, verb, server, **options):
        try:
            agent.serve_host_commands(server)
            mail_server = agent.bind(MailServer.objects.get(name=server))
        except MailServer.DoesNotExist:
            raise CommandError(f"no server named {server!r}") from None
        except (agent.AgentConfigError, agent.NotServedHere) as exc:
            raise CommandError(str(exc)) from None
        if verb == "status":
            self.stdout.write(daemon.status(mail_server).summary)
            return
        try:
            self.stdout.write(daemon.VERBS[verb](mail_server, Mta(mail_server)))
        except (MtaError, daemon.DaemonError) as exc:
            raise CommandError(str(exc)) from exc
