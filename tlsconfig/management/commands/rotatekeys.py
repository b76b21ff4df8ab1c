"""Re-encrypt every stored private key under the newest MAILADMIN_KEYS entry, so older entries can be dropped."""

from django.core.management.base import BaseCommand
from django.db import transaction

from mailadmin import audit
from tlsconfig import keystore
from tlsconfig.models import PrivateKey


class Command(BaseCommand):
    help = "Re-encrypt the stored private keys under the first key of MAILADMIN_KEYS."

    def handle(self, *args, **options):
        with transaction.atomic():
            rows = list(PrivateKey.objects.select_for_update())
            for row in rows:
                row.ciphertext = keystore.rotate(row.ciphertext)
                row.save(update_fields=["ciphertext"])
            audit.record("rotate key encryption", detail=f"{len(rows)} private keys re-encrypted")
        self.stdout.write(f"{len(rows)} private keys re-encrypted under the newest key.")
