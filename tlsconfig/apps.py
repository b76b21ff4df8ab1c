from django.apps import AppConfig


class TlsconfigConfig(AppConfig):
    name = "tlsconfig"

    def ready(self) -> None:
        from mailadmin.views import AGENT_RESULT_TEMPLATES

        # The probe page's answers from the host's agent: the live probe and the probe message.
        AGENT_RESULT_TEMPLATES.update({"tlsconfig/_probe_result.html", "tlsconfig/_probe_message_result.html"})
