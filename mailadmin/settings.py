"""Settings for the mailadmin console.

Everything that differs between machines comes from the environment (MAILADMIN_*), with
defaults that make `make run` work on a fresh checkout: state lives under var/.
"""

import base64
import os
import secrets
from pathlib import Path
from urllib.parse import quote

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# What a console process writes is its owner's alone: the database and its -wal/-shm, the secrets
# below, logs, beat's schedule, an agent's scratch files (0600, directories 0700). Every process
# (web, beat, workers, agents, manage.py, the tests) loads these settings as it starts (gunicorn
# opens its own log files before: there the service's umask counts). A file another account must
# read gets its mode where it is written: sendmail's files through mailadmin.mta.files (cf 0644,
# access.db 0640, keys 0600), collected static files below.
os.umask(0o077)
# Files stored through Django's storages are collectstatic's output: public content that the web
# server's user serves (nginx's under `make install`; scripts/bootstrap gives make run's to mailadmin).
FILE_UPLOAD_PERMISSIONS = 0o644
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o755


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from exc


VAR_DIR = Path(env_str("MAILADMIN_VAR_DIR", str(BASE_DIR / "var"))).resolve()
# The console's own state (database, secret key, Fernet keys, Redis password), owned by the
# unprivileged user the web tier runs as; never under a root an agent serves (var/instances/…).
CONSOLE_DIR = Path(env_str("MAILADMIN_CONSOLE_DIR", str(VAR_DIR / "console"))).resolve()


def secret_from(variable: str, path: Path, make) -> str:
    """The secret in the environment variable, or in `path`: created 0600 (O_EXCL, so two processes
    starting at once cannot each write their own) with make() on first use."""
    from_env = os.environ.get(variable)
    if from_env:
        return from_env
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(make() + "\n")
    return path.read_text().strip()


def load_secret_key() -> str:
    return secret_from("MAILADMIN_SECRET_KEY", CONSOLE_DIR / "secret_key", lambda: secrets.token_urlsafe(50))


SECRET_KEY = load_secret_key()
DEBUG = env_bool("MAILADMIN_DEBUG", False)
ALLOWED_HOSTS = env_str("MAILADMIN_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "mailadmin",
    "tlsconfig",
    "mailqueue",
    "tracking",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api",
]

MIDDLEWARE = [
    # First: behind nginx on the unix socket, the client's address is nginx's X-Real-IP.
    "mailadmin.proxy.UnixSocketClientAddress",
    # No API token named by one request leaks into the next one this thread serves.
    "mailadmin.work.ApiTokenScope",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # Holds a session that has not passed its second factor at the code step or at enrolment.
    "mailadmin.people_views.SecondFactorGate",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mailadmin.urls"
WSGI_APPLICATION = "mailadmin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "mailadmin.context.console",
            ],
        },
    },
]

# SQLite under var/ is the embedded default of `make run`; more than one host shares PostgreSQL,
# named by MAILADMIN_DATABASE_URL (postgres://user:password@host:port/name).
DATABASE_URL = os.environ.get("MAILADMIN_DATABASE_URL", "")
if DATABASE_URL:
    import dj_database_url

    _database = dj_database_url.parse(DATABASE_URL)
    if _database["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("MAILADMIN_DATABASE_URL must be a postgres:// URL")
    # MAILADMIN_DB_NAME: another database on the same server (the tests point their worker at theirs).
    _database["NAME"] = env_str("MAILADMIN_DB_NAME", _database["NAME"])
    _database["TEST"] = {"NAME": f"test_{_database['NAME']}"}
    DATABASES = {"default": _database}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("MAILADMIN_DB_PATH", str(CONSOLE_DIR / "db.sqlite3")),
            # The web server, the worker and beat write concurrently: WAL plus immediate
            # transactions turn lock contention into waiting instead of "database is locked".
            "OPTIONS": {
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
            },
            "TEST": {"NAME": env_str("MAILADMIN_TEST_DB_PATH", str(VAR_DIR / "test-db.sqlite3"))},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# --- People: logins, second factor, throttling.
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out user before the password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_AGE = 8 * 3600
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# A POST without a valid CSRF token is refused with 403 and an audit row.
CSRF_FAILURE_VIEW = "mailadmin.people_views.csrf_failure"
# Administrators must pass a TOTP code (or a recovery code) after their password; an administrator
# without an authenticator is sent to enrolment first. Everyone else may enrol.
MAILADMIN_REQUIRE_2FA_FOR_ADMINISTRATORS = env_bool("MAILADMIN_REQUIRE_2FA_FOR_ADMINISTRATORS", True)
OTP_TOTP_ISSUER = env_str("MAILADMIN_TOTP_ISSUER", "mailadmin")
# django-axes: after AXES_FAILURE_LIMIT wrong passwords for one user name from one address, that
# name is locked out from that address. Keyed on both, so that someone guessing from elsewhere
# cannot lock the real administrators out of their own console (a name-only lockout of every
# administrator would leave nobody to lift it). No cool-off: the lockout lasts until an
# administrator lifts it on the Users page (or `manage.py axes_reset_username NAME`), because a
# lockout that expires by itself only slows guessing down.
AXES_FAILURE_LIMIT = env_int("MAILADMIN_LOGIN_FAILURE_LIMIT", 5)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_COOLOFF_TIME = None
# A successful login forgets earlier mistakes, so typos spread over months never add up to a lockout.
AXES_RESET_ON_SUCCESS = True
# Attempts while locked out are refused before the password is checked and are not counted again.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# --- Transport security and CSP.
# `make run` serves on loopback over plain HTTP. MAILADMIN_HTTPS=1 (what `make install` writes)
# means served only over HTTPS: nginx terminates TLS and proxies to gunicorn on a unix socket.
SERVED_OVER_HTTPS = env_bool("MAILADMIN_HTTPS", False)
# MAILADMIN_SECURE_COOKIES alone still marks the cookies Secure (TLS terminated elsewhere).
SESSION_COOKIE_SECURE = env_bool("MAILADMIN_SECURE_COOKIES", SERVED_OVER_HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if SERVED_OVER_HTTPS:
    SECURE_SSL_REDIRECT = True
    # Trusting this header is safe only because nothing but nginx reaches gunicorn (a unix socket
    # nginx alone may open) and nginx sets it on every request, replacing whatever a client sent.
    # With gunicorn on a TCP port anyone could send it and pass for HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 365 * 24 * 3600
    # Subdomains too: the console's host name is its own (console.example.org), and a plain-HTTP
    # name beneath it, real or spoofed by whoever controls the network, could otherwise plant
    # cookies (a CSRF token) that browsers send to the console.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # Not preloaded: the preload list hard-codes a whole registrable domain to HTTPS in browsers,
    # which is its owner's decision, not a console's (so security.W021 is silenced, for this only).
    SECURE_HSTS_PRELOAD = False
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
    CSRF_TRUSTED_ORIGINS = [
        f"https://*{host}" if host.startswith(".") else f"https://{host}" for host in ALLOWED_HOSTS if host != "*"
    ]
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# No inline script, style attribute or eval anywhere: htmx runs without eval (base.html's
# htmx-config), progress bars get their width from static/js/mailadmin.js (data-progress).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("MAILADMIN_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env_str("MAILADMIN_STATIC_STORAGE", "whitenoise.storage.CompressedManifestStaticFilesStorage")
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("MAILADMIN_LOG_LEVEL", "INFO")},
}

# --- Celery: Redis is only the doorbell; the work rows in the database are the record.
REDIS_PORT = env_int("MAILADMIN_REDIS_PORT", 6390)


def load_redis_password() -> str:
    """MAILADMIN_REDIS_PASSWORD, or var/console/redis.password (scripts/run reads it too)."""
    return secret_from("MAILADMIN_REDIS_PASSWORD", CONSOLE_DIR / "redis.password", lambda: secrets.token_hex(32))


REDIS_PASSWORD = load_redis_password()
CELERY_BROKER_URL = os.environ.get("MAILADMIN_BROKER_URL") or (
    f"redis://:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:{REDIS_PORT}/0"
)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_TIME_LIMIT = 600
CELERY_TASK_SOFT_TIME_LIMIT = 540
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 900}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "mailadmin"
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2}

# --- Work rows (mailadmin.work): how long a claimed row may run before the sweeper takes it back.
WORK_LEASE_SECONDS = env_int("MAILADMIN_WORK_LEASE_SECONDS", 120)
WORK_REDISPATCH_SECONDS = env_int("MAILADMIN_WORK_REDISPATCH_SECONDS", 60)
WORK_MAX_ATTEMPTS = env_int("MAILADMIN_WORK_MAX_ATTEMPTS", 5)
WORK_SWEEP_SECONDS = env_int("MAILADMIN_WORK_SWEEP_SECONDS", 30)
# A queue index refresh compares readdir inodes; this often it also compares size and mtime.
QUEUE_INDEX_DEEP_SECONDS = env_int("MAILADMIN_QUEUE_INDEX_DEEP_SECONDS", 600)
# Between listings, a refresh looks only at the names the kernel reported changed (inotify);
# 0 lists the queue directories at every refresh (a spool other hosts write to over NFS).
QUEUE_INDEX_WATCH = bool(env_int("MAILADMIN_QUEUE_INDEX_WATCH", 1))
# Every this often each agent writes a HostSnapshot of its instances (daemon, cf, queue counts, log
# tail, STARTTLS facts): the pages read it. Silent for AGENT_STALE_SECONDS (and at least 3 intervals):
# the pages say the agent is not answering. Each snapshot is one SMTP session (EHLO, QUIT) and so
# a few lines in the mail log: every 30 s is under 3,000 a day, and actions take their own at once.
AGENT_SNAPSHOT_SECONDS = env_int("MAILADMIN_AGENT_SNAPSHOT_SECONDS", 30)
# Message tracking: each agent reads its instances' logs on this often; traces are kept this long.
TRACE_INGEST_SECONDS = env_int("MAILADMIN_TRACE_INGEST_SECONDS", 15)
TRACE_RETENTION_DAYS = env_int("MAILADMIN_TRACE_RETENTION_DAYS", 30)
CELERY_BEAT_SCHEDULE = {
    "sweep-work-rows": {"task": "mailadmin.tasks.sweep_work", "schedule": float(WORK_SWEEP_SECONDS)},
    "refresh-queue-indexes": {"task": "mailqueue.tasks.refresh_indexes", "schedule": 60.0},
    "sample-queues": {"task": "mailqueue.tasks.sample_queues", "schedule": 300.0},
    "check-certificate-expiry": {"task": "tlsconfig.tasks.check_expiry", "schedule": 86400.0},
    "poll-logs": {
        "task": "tracking.tasks.poll_logs",
        "schedule": float(TRACE_INGEST_SECONDS),
        "options": {"queue": "mailadmin", "expires": float(TRACE_INGEST_SECONDS)},
    },
    "purge-traces": {"task": "tracking.tasks.purge_traces", "schedule": 3600.0},
    "poll-agents": {
        "task": "mailadmin.tasks.poll_agents",
        "schedule": float(AGENT_SNAPSHOT_SECONDS),
        "options": {"queue": "mailadmin", "expires": float(AGENT_SNAPSHOT_SECONDS)},
    },
}

# --- The managed MTAs.
# Paths an administrator may give a MailServer: everything must resolve inside one of these.
MAILADMIN_ALLOWED_ROOTS = [
    str(VAR_DIR),
    "/etc/mail",
    "/var/spool/mqueue",
    "/var/spool/mqueue-client",
    "/run/sendmail",
    "/var/run/sendmail",
    "/var/log",
    "/usr/share/sendmail",
    "/usr/sbin",
    "/usr/bin",
    "/usr/libexec/sendmail",
    *[p for p in env_str("MAILADMIN_EXTRA_ROOTS", "").split(":") if p],
]
MAILADMIN_INSTANCES_DIR = VAR_DIR / "instances"
# The agent configuration `make run` writes for the embedded instance; a host's agent and its
# management commands read MAILADMIN_AGENT_CONFIG (e.g. /etc/mailadmin/agent.toml) instead.
MAILADMIN_AGENT_CONFIG = env_str("MAILADMIN_AGENT_CONFIG", str(VAR_DIR / "agent.toml"))
# A host whose agent has not answered for this long is shown as not answering.
AGENT_STALE_SECONDS = env_int("MAILADMIN_AGENT_STALE_SECONDS", 90)
MAILADMIN_LOCAL_PORT = env_int("MAILADMIN_LOCAL_PORT", 2525)
MAILADMIN_LOG_SINK = VAR_DIR / "log" / "syslog"
MAILADMIN_COMMAND_TIMEOUT = env_int("MAILADMIN_COMMAND_TIMEOUT", 120)


# --- Private keys at rest (tlsconfig.keystore): Fernet keys kept apart from SECRET_KEY and the database.
# MAILADMIN_KEYS is a comma-separated list, newest first (older ones still decrypt: rotation);
# without it the list is read from var/keys, created 0600 with one fresh key on first use.
def load_key_encryption_keys() -> list[str]:
    from_env = os.environ.get("MAILADMIN_KEYS")
    if from_env:
        return [key.strip() for key in from_env.split(",") if key.strip()]
    key_file = Path(env_str("MAILADMIN_KEYS_FILE", str(CONSOLE_DIR / "keys")))
    text = secret_from("", key_file, lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    return [line.strip() for line in text.splitlines() if line.strip()]


MAILADMIN_KEYS = load_key_encryption_keys()


# --- REST API (api/): DRF with bearer tokens or the console's session (CSRF enforced), OpenAPI 3
# by drf-spectacular, Swagger UI's assets vendored by drf-spectacular-sidecar (no CDN).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.ScopePermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "mailadmin API",
    "DESCRIPTION": "The console's pages as JSON: hosts, queue and queue actions, configuration and builds, "
    "certificates, traces, audit log. "
    "A token travels as `Authorization: Bearer <token>`; long work answers 202 with its status URL.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Work rows and traces both have a "status": name their enums apart (drf-spectacular's W001).
    "ENUM_NAME_OVERRIDES": {
        "WorkStatusEnum": "mailadmin.work.WorkStatus",
        "TraceStatusEnum": "tracking.models.MessageTrace.Status",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_error_responses",
    ],
}
API_TOKEN_MAX_DAYS = env_int("MAILADMIN_API_TOKEN_MAX_DAYS", 365)
