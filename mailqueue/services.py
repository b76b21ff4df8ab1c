"""Which messages a queue action on listed ids or on "all matching" acts on: the page's rules, in one
place the page and the API can both call (the page's act_on_messages does the same checks)."""

from __future__ import annotations

from mailadmin.models import MailServer
from mailqueue.forms import QueueFilterForm
from mailqueue.models import QueueMessage


class ActionRefused(ValueError):
    """Nothing was done; `field` names the input at fault (None: the request as a whole)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def ids_to_act_on(server: MailServer, data: dict, filters: QueueFilterForm) -> list[str]:
    """The queue ids a SelectedActionForm's cleaned `data` acts on, with the filter the page showed."""
    if data["scope"] == "matching":
        if not filters.is_valid() or not filters.query_items():
            raise ActionRefused("Acting on all messages needs at least one filter.", "filter")
        ids = list(filters.filter(QueueMessage.objects.filter(server=server)).values_list("queue_id", flat=True))
        confirmed = data.get("confirmed_count")
        if confirmed is not None and confirmed != len(ids):
            raise ActionRefused(
                f"The filter now matches {len(ids)} message(s), not the {confirmed} you confirmed: nothing was done. "
                "Look at the list again and repeat the action if it is still what you want.",
                "confirmed_count",
            )
    else:
        known = set(
            QueueMessage.objects.filter(server=server, queue_id__in=data["ids"]).values_list("queue_id", flat=True)
        )
        unknown = [queue_id for queue_id in data["ids"] if queue_id not in known]
        if unknown:
            raise ActionRefused(f"Not in this server's queue index: {', '.join(unknown[:5])}.", "ids")
        ids = data["ids"]
    if not ids:
        raise ActionRefused("No message matches.")
    return ids
