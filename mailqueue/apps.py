from django.apps import AppConfig


class MailqueueConfig(AppConfig):
    name = "mailqueue"
