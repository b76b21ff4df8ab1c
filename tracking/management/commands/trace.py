"""`manage.py trace QUERY`: each matching message's journey, as the tracking page shows it."""

from django.core.management.base import BaseCommand, CommandError

from tracking.models import MessageTrace
from tracking.search import no_control_characters
from tracking.traces import journey, search_filter

LIMIT = 20


def journey_lines(trace: MessageTrace) -> list[str]:
    lines = []
    for hop in journey(trace):
        when = hop.received_at.strftime("%Y-%m-%d %H:%M:%S") if hop.received_at else "?"
        lines.append(f"{hop.server.name} {hop.queue_id or '(refused)'}  {hop.status}  received {when}")
        lines.append(f"  from {hop.sender or '<>'} via {hop.relay or '?'}  {hop.message_id}")
        if hop.quarantine_reason:
            lines.append(f"  quarantined: {hop.quarantine_reason}")
        if hop.ruleset:
            lines.append(f"  refused by {hop.ruleset}: {hop.status_text}")
        if hop.bounce_of_id:
            lines.append(f"  a bounce of {hop.bounce_of.queue_id}")
        for recipient in hop.recipients.all():
            lines.append(
                f"  to {recipient.address}  {recipient.status}  attempts {recipient.attempts}"
                f"  {recipient.relay}  {recipient.dsn}  {recipient.status_text}".rstrip()
            )
        for event in hop.events.all():
            lines.append(f"    | {event.raw}")
    return lines


class Command(BaseCommand):
    help = "Print the journey of every message matching a Message-ID (<id@host>), a queue id or an address."

    def add_arguments(self, parser):
        parser.add_argument("query")

    def handle(self, *args, query: str, **options):
        try:
            query = no_control_characters(query)
        except Exception as exc:
            raise CommandError(" ".join(getattr(exc, "messages", [str(exc)]))) from exc
        if not query:
            raise CommandError("Give a Message-ID, a queue id or an address.")
        matches = list(MessageTrace.objects.filter(search_filter(query)).distinct().order_by("-received_at")[:LIMIT])
        if not matches:
            self.stdout.write(f"No message matches {query!r}.")
            return
        shown: set[int] = set()
        for trace in matches:
            if trace.pk in shown:
                continue
            hops = journey(trace)
            shown |= {hop.pk for hop in hops}
            self.stdout.write("\n".join(journey_lines(trace)) + "\n")
