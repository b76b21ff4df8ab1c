"""`manage.py mta start|stop|restart|reload|status|run`: the sendmail daemon of a server this host serves.

`run` is `make run`'s sendmail service (Procfile): sendmail -bd forks into a session of its own,
where the supervisor's signals never reach it, so this foreground process starts the daemon, stays
up while `make run` does, and stops the daemon itself when the supervisor stops it.
"""

import signal
import time

from django.core.management.base import BaseCommand, CommandError

from mailadmin.models import MailServer
from mailadmin.mta import agent, daemon
from mailadmin.mta.gateway import Mta, MtaError

# How often `run` looks at the daemon; it only reports what it sees (see Command.run).
WATCH_SECONDS = 2.0


class Command(BaseCommand):
    help = (
        "Start, stop, restart, reload or show the sendmail daemon of a managed server; `run` starts it "
        "and stops it again at SIGTERM, SIGINT or SIGHUP (make run's sendmail service)."
    )

    def add_arguments(self, parser):
        parser.add_argument("verb", choices=[*daemon.VERBS, "status", "run"])
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
            if verb == "run":
                self.run(mail_server)
            elif verb == "stop":
                self.say(self.stop(mail_server))
            else:
                self.stdout.write(daemon.VERBS[verb](mail_server, Mta(mail_server)))
        except (MtaError, daemon.DaemonError) as exc:
            raise CommandError(str(exc)) from exc

    def stop(self, server) -> str:
        """daemon.stop, unless the PidFile is stale: never signal a process it no longer names."""
        pid = daemon.read_pid_file(server.pid_file)
        if pid is not None and daemon.is_sendmail_process(pid) and daemon.started_after_pid_file(pid, server.pid_file):
            return (
                f"not running: {server.pid_file} is stale (pid {pid} is a sendmail started after the file "
                "was written, not this daemon); not signalling it"
            )
        return daemon.stop(server, Mta(server))

    def run(self, server) -> None:
        """Start the daemon (or adopt the one already answering), then wait for a stop signal.

        A daemon that goes away meanwhile does not end `run`: an administrator may stop it from the
        console, and the rest of `make run` keeps serving; the change is only reported.
        """
        stop_requested = []
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda signum, frame: stop_requested.append(signum))
        watched = None
        try:
            self.say(daemon.start(server, Mta(server)))
            watched = daemon.live_pid(server)
            next_look = time.monotonic() + WATCH_SECONDS
            while not stop_requested:
                time.sleep(0.1)
                if time.monotonic() < next_look:
                    continue
                next_look = time.monotonic() + WATCH_SECONDS
                current = daemon.live_pid(server)
                if current != watched:
                    self.say(
                        f"the daemon is now pid {current}"
                        if current
                        else "the daemon is not running (stopped from the console?); it is not restarted"
                    )
                    watched = current
        finally:
            # Also when the start failed half-way or this process is told to stop while starting.
            self.say(f"stopping the daemon: {self.stop(server)}")

    def say(self, line: str) -> None:
        # The supervisor reads this through a pipe; if the pipe is gone, the daemon must still be stopped.
        try:
            self.stdout.write(line)
            self.stdout.flush()
        except OSError:
            pass
