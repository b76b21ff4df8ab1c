from django.apps import AppConfig


class MailqueueConfig(AppConfig):
    name = "mailqueue"

    def ready(self) -> None:
        from mailadmin.views import AGENT_RESULT_TEMPLATES

        # The message page's spool view, rendered when the host's agent has answered.
        AGENT_RESULT_TEMPLATES.add("mailqueue/_message_preview.html")
