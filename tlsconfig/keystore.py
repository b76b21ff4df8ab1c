"""Private keys at rest: encrypted with MultiFernet under keys from settings.MAILADMIN_KEYS.

A key is decrypted only where it is written to the instance's 0600 key file or used to sign;
nothing that renders a page ever calls `reveal`.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def fernet() -> MultiFernet:
    keys = settings.MAILADMIN_KEYS
    if not keys:
        raise ImproperlyConfigured("MAILADMIN_KEYS is empty: private keys cannot be stored.")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"MAILADMIN_KEYS holds a key that is not a Fernet key: {exc}") from exc


def seal(plaintext: bytes) -> bytes:
    return fernet().encrypt(plaintext)


def reveal(token: bytes) -> bytes:
    try:
        return fernet().decrypt(bytes(token))
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored private key cannot be decrypted with MAILADMIN_KEYS "
            "(was the key list replaced instead of rotated?)"
        ) from exc


def rotate(token: bytes) -> bytes:
    """Re-encrypt under the newest key, so an old key can later be dropped from the list."""
    return fernet().rotate(bytes(token))
