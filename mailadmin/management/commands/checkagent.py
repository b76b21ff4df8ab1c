"""`manage.py checkagent --host NAME`: is this host's agent configuration one its agent would serve?

mailadmin-agent@NAME.service runs it before every start, so a configuration the agent would
reject, or one written for another host, stops the unit with the reasons in the journal instead of
a worker consuming the wrong queue. A postmaster runs it after editing /etc/mailadmin/agent.toml.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailadmin.mta import agent


class Command(BaseCommand):
    help = "Validate the agent configuration (MAILADMIN_AGENT_CONFIG) and that it names the host given."

    def add_arguments(self, parser):
        parser.add_argument("--host", help="the host the agent is started for (its queue is mta.HOST)")

    def handle(self, *args, host, **options):
        path = settings.MAILADMIN_AGENT_CONFIG
        try:
            config = agent.load_file(path)
        except agent.AgentConfigError as exc:
            raise CommandError(str(exc)) from exc
        if host and config.host != host:
            raise CommandError(
                f'{path} says host = "{config.host}", but this agent was started for {host!r} '
                f"(start mailadmin-agent@{config.host}, or change host in the file)"
            )
        for inst in config.instances.values():
            self.stdout.write(
                f"{config.celery_queue}: instance {inst.name} ({inst.hostname}) conf {inst.conf_dir}, "
                f"queue {inst.queue_dir}, daemon {inst.smtp_address}:{inst.smtp_port}, sendmail {inst.sendmail_bin}"
            )
