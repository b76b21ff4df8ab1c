"""Settings for `make test`: the same as production except where a test needs something else."""

import os

from mailadmin.settings import *  # noqa: F403
from mailadmin.settings import DATABASES, STORAGES, VAR_DIR

# One test database per pytest process: two suites running side by side must not recreate
# each other's database (the Celery worker is told the name through MAILADMIN_DB_PATH, or
# MAILADMIN_DB_NAME on PostgreSQL).
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["TEST"]["NAME"] = f"test_{DATABASES['default']['NAME']}_{os.getpid()}"
else:
    try:
        (VAR_DIR / "test-dbs").mkdir(parents=True, exist_ok=True)
    except PermissionError:
        pass  # a web server a test runs as `mailadmin` on a var/ of its own never makes a test database
    DATABASES["default"]["TEST"]["NAME"] = str(VAR_DIR / "test-dbs" / f"{os.getpid()}.sqlite3")

# Tests render templates without running collectstatic first.
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
# Hashing strength is not under test; a fast hasher keeps per-test logins cheap.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# No collectstatic in tests: whitenoise serves from the finders instead of STATIC_ROOT.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
MAILADMIN_INSTANCES_DIR = VAR_DIR / "test-instances"
