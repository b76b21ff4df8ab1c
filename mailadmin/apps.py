from django.apps import AppConfig


class MailadminConfig(AppConfig):
    name = "mailadmin"
    verbose_name = "mailadmin core"

    def ready(self) -> None:
        from mailadmin import signals  # noqa: F401  (connects the login audit receivers)
