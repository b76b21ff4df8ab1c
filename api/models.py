"""API tokens: a user's own, shown once, stored as a SHA-256 of the secret, scoped, expiring,
optionally limited to some hosts, revocable."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from mailadmin.models import MailServer


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=80, help_text="What the token is for, e.g. 'queue age check'.")
    # The public half of the token, shown in lists and audit rows; finds the row to compare against.
    prefix = models.CharField(max_length=16, unique=True)
    secret_sha256 = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    servers = models.ManyToManyField(
        MailServer, blank=True, related_name="+", help_text="Hosts the token reaches; none means every host."
    )
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        # What an audit row names: readable, and never the secret.
        return f"{self.name} ({self.prefix})"

    @property
    def usable(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()
