from django.apps import AppConfig


class TlsconfigConfig(AppConfig):
    name = "tlsconfig"
