from __future__ import annotations

from django.conf import settings
from django.db import models

from mailadmin.work import WorkItem


class AgentHost(models.Model):
    """An MTA host, as its agent describes itself: the agent asks to join, an administrator approves.

    The agent (a root Celery worker consuming `mta.<name>`) reads its instances from a
    configuration file on its own host and reports them here when it starts; the console
    never decides a host's paths or binaries. Until approved, nothing is dispatched to it
    and its instances are not MailServer rows.
    """

    name = models.SlugField(max_length=40, unique=True, help_text="The host as its agent names itself.")
    celery_queue = models.CharField(max_length=60, help_text="The agent consumes this Celery queue: mta.<name>.")
    requested_at = models.DateTimeField(auto_now_add=True)
    token_verified = models.BooleanField(default=False, help_text="It presented a valid one-time join token.")
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_seen = models.DateTimeField(null=True, blank=True, help_text="When its agent last answered.")
    report = models.JSONField(default=dict, blank=True, help_text="What the agent reported when it started.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def approved(self) -> bool:
        return self.approved_at is not None


class JoinToken(models.Model):
    """A one-time secret an administrator hands to a new host's agent (stored hashed)."""

    host_name = models.SlugField(max_length=40)
    token_sha256 = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"join token for {self.host_name}"


class MailServer(models.Model):
    """One sendmail instance the console manages, as its host's agent reported it.

    The path and binary fields are what the agent said; they are shown, never set, by the
    browser, and the agent itself only ever uses its own configuration's values.
    """

    name = models.SlugField(max_length=40, unique=True, help_text="Short name, e.g. local or relay1.")
    description = models.CharField(max_length=200, blank=True)
    embedded = models.BooleanField(
        default=False,
        help_text="Created by the console under var/; its base .mc is written by the console.",
    )
    hostname = models.CharField(max_length=253, help_text="Fully qualified name the instance uses for itself ($j).")
    conf_dir = models.CharField(max_length=400, help_text="Directory holding sendmail.mc, sendmail.cf, access …")
    mc_path = models.CharField("sendmail.mc", max_length=400)
    cf_path = models.CharField("sendmail.cf", max_length=400)
    access_path = models.CharField("access map source", max_length=400)
    cert_dir = models.CharField("certificate directory", max_length=400)
    queue_dir = models.CharField("queue directory", max_length=400)
    pid_file = models.CharField("PidFile", max_length=400)
    log_file = models.CharField(max_length=400, blank=True, help_text="Where this instance's syslog lines land.")
    syslog_tag = models.CharField(max_length=40, default="sendmail", help_text="Syslog identifier (sendmail -L).")
    sendmail_bin = models.CharField("sendmail binary", max_length=400, default="/usr/sbin/sendmail")
    m4_bin = models.CharField("m4 binary", max_length=400, default="/usr/bin/m4")
    makemap_bin = models.CharField("makemap binary", max_length=400, default="/usr/sbin/makemap")
    cf_tree = models.CharField("cf macro tree", max_length=400, default="/usr/share/sendmail/cf")
    smtp_address = models.GenericIPAddressField("daemon address", default="127.0.0.1")
    smtp_port = models.PositiveIntegerField("daemon port", default=25)
    queue_interval = models.CharField(max_length=10, default="1h", help_text="Queue-run interval of the daemon (-q).")
    celery_queue = models.CharField(
        max_length=60, help_text="Celery queue the worker on this MTA's host listens on, e.g. mta.local."
    )
    mc_template = models.TextField(
        blank=True,
        help_text="The imported .mc: lines the catalog does not model are re-emitted from here verbatim.",
    )
    access_unmanaged = models.TextField(
        blank=True,
        help_text="Imported access map lines of tags the console does not manage, re-emitted verbatim.",
    )
    host = models.ForeignKey(AgentHost, null=True, blank=True, on_delete=models.PROTECT, related_name="servers")
    managed_maps = models.JSONField(
        default=list,
        blank=True,
        help_text="The map and class files the console writes at each install (imported or given a row), empty or not.",
    )
    roots = models.JSONField(
        default=list,
        blank=True,
        help_text="Directories the agent declares for this instance; every path lies under one.",
    )
    reserved_words = models.JSONField(
        default=list, blank=True, help_text="m4 and cf macro names of the agent's cf tree: no value may contain one."
    )
    reported_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AuditEvent(models.Model):
    """Who did what, when, on which server; the command run and how it ended."""

    class Outcome(models.TextChoices):
        OK = "ok", "ok"
        FAILED = "failed", "failed"
        DENIED = "denied", "denied"
        QUEUED = "queued", "queued"
        # A command's row is written before it runs and completed once when it returns: a
        # worker killed while sendmail ran leaves "started", never no row at all.
        STARTED = "started", "started (no result recorded)"

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    username = models.CharField(max_length=150, blank=True, help_text="Kept when the user is deleted.")
    action = models.CharField(max_length=80, db_index=True)
    server = models.ForeignKey(MailServer, null=True, blank=True, on_delete=models.SET_NULL)
    target = models.CharField(max_length=300, blank=True)
    argv = models.JSONField(null=True, blank=True, help_text="The command run, as its argument list.")
    exit_code = models.IntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OK, db_index=True)
    detail = models.TextField(blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    api_token = models.CharField(
        max_length=120, blank=True, help_text="The API token the change came through (name and key prefix), if any."
    )

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.outcome}"


class ServiceAction(WorkItem):
    """Start, stop, restart or reload a server's sendmail daemon, run by that server's worker."""

    class Verb(models.TextChoices):
        START = "start", "start"
        STOP = "stop", "stop"
        RESTART = "restart", "restart"
        RELOAD = "reload", "reload (SIGHUP)"

    task_name = "mailadmin.tasks.run_service_action"

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="service_actions")
    verb = models.CharField(max_length=10, choices=Verb.choices)
    output = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.verb} {self.server} ({self.status})"

    def celery_queue(self) -> str:
        return self.server.celery_queue


class ConfigValue(models.Model):
    """One cf option set on a server, by its cf name in the catalog; the value is already validated."""

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="config_values")
    name = models.CharField(max_length=80)
    value = models.CharField(max_length=1000)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["server", "name"], name="one_value_per_option")]

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class FeatureSetting(models.Model):
    """A FEATURE() declared on a server, with its arguments (validated against the catalog)."""

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="features")
    name = models.CharField(max_length=80)
    args = models.JSONField(default=list, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["server", "name"], name="one_setting_per_feature")]

    def __str__(self) -> str:
        return f"FEATURE({self.name})"


class AccessEntry(models.Model):
    """A row of the access map: `Tag:key<TAB>value` (ClientRate:, ClientConn:, GreetPause:, Connect: …)."""

    class Tag(models.TextChoices):
        CLIENT_RATE = "ClientRate", "ClientRate (connections per window)"
        CLIENT_CONN = "ClientConn", "ClientConn (simultaneous connections)"
        GREET_PAUSE = "GreetPause", "GreetPause (milliseconds)"
        CONNECT = "Connect", "Connect"
        FROM = "From", "From"
        TO = "To", "To"
        TLS_CLT = "TLS_Clt", "TLS_Clt (as server, about clients)"
        TLS_SRV = "TLS_Srv", "TLS_Srv (as client, about servers)"
        TRY_TLS = "Try_TLS", "Try_TLS"
        TLS_RCPT = "TLS_Rcpt", "TLS_Rcpt (as client, about a recipient's MTA)"
        SRV_FEATURES = "Srv_Features", "Srv_Features (as server, per client)"
        CLT_FEATURES = "Clt_Features", "Clt_Features (as client, per server)"

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="access_entries")
    tag = models.CharField(max_length=20, choices=Tag.choices)
    key = models.CharField(max_length=255, blank=True, help_text="Address, network or domain; empty = default.")
    value = models.CharField(max_length=255)
    comment = models.CharField(max_length=200, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tag", "key"]
        constraints = [models.UniqueConstraint(fields=["server", "tag", "key"], name="one_access_row_per_key")]

    def __str__(self) -> str:
        return f"{self.tag}:{self.key}\t{self.value}"


class MapEntry(models.Model):
    """One line of a map or class file the console manages (aliases, virtusertable, local-host-names …).

    A file is its rows in `position` order. A row is either a typed entry (key, value and an
    optional comment rendered as a `# comment` line above it) or `verbatim` text: the lines of an
    imported file the console does not model (comments, blank lines, forms it does not parse),
    re-emitted byte for byte where they stood. Keys and values are cleaned by mailadmin.cf.maps
    before they are stored.
    """

    class Map(models.TextChoices):
        ALIASES = "aliases", "aliases"
        VIRTUSERTABLE = "virtusertable", "virtusertable"
        MAILERTABLE = "mailertable", "mailertable"
        GENERICSTABLE = "genericstable", "genericstable"
        DOMAINTABLE = "domaintable", "domaintable"
        LOCAL_HOST_NAMES = "local-host-names", "local-host-names (class w)"
        RELAY_DOMAINS = "relay-domains", "relay-domains (class R)"
        TRUSTED_USERS = "trusted-users", "trusted-users (class t)"

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="map_entries")
    map = models.CharField(max_length=20, choices=Map.choices)
    position = models.PositiveIntegerField(default=0, help_text="Order in the file.")
    key = models.CharField(max_length=255, blank=True)
    value = models.TextField(blank=True)
    comment = models.CharField(max_length=200, blank=True)
    verbatim = models.TextField(blank=True, help_text="Unmodelled lines kept byte for byte (then key is empty).")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["map", "position", "id"]
        indexes = [models.Index(fields=["server", "map", "position"], name="map_entry_order")]
        constraints = [
            models.UniqueConstraint(
                fields=["server", "map", "key"], condition=models.Q(verbatim=""), name="one_map_row_per_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.map}: {self.verbatim!r}" if self.verbatim else f"{self.map}: {self.key} {self.value}"


class Listener(models.Model):
    """A DAEMON_OPTIONS (accepting) or CLIENT_OPTIONS (sending) line of the .mc, as a typed row."""

    class Kind(models.TextChoices):
        DAEMON = "daemon", "DAEMON_OPTIONS (accepts mail)"
        CLIENT = "client", "CLIENT_OPTIONS (sends mail)"

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="listeners")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DAEMON)
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=40, blank=True, help_text="Name= (shown in the log and ${daemon_name}).")
    address = models.CharField(max_length=64, blank=True, help_text="Addr=: an IP address; empty = every address.")
    port = models.CharField(max_length=10, blank=True, help_text="Port=: a number or a service name.")
    family = models.CharField(max_length=10, blank=True, help_text="Family=: inet or inet6.")
    modifiers = models.CharField(max_length=40, blank=True, help_text="Modifiers= (M=): letters such as a, b, E, h.")
    extra = models.CharField(
        max_length=300, blank=True, help_text="Other key=value pairs of the line (already validated)."
    )
    comment = models.CharField(max_length=200, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "position", "id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.name or '-'} {self.address or '*'}:{self.port or '25'}"


class ConfigBuild(WorkItem):
    """One cf build: the rendered .mc, what m4 and sendmail made of it, and the diff to the live cf."""

    class Origin(models.TextChoices):
        CONSOLE = "console", "built by the console"
        HOST = "host", "found live on the host before the console's first install"

    task_name = "mailadmin.tasks.run_config_build"

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="builds")
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.CONSOLE)
    mc_text = models.TextField()
    access_text = models.TextField(blank=True)
    maps = models.JSONField(
        default=dict, blank=True, help_text="Map or class name → the source text this build installs."
    )
    rows = models.JSONField(
        default=dict, blank=True, help_text="The rows it was built from (options, FEATUREs, access, maps, listeners)."
    )
    expected_options = models.JSONField(default=dict, blank=True, help_text="cf name → value the cf must show.")
    cf_text = models.TextField(blank=True)
    cf_sha256 = models.CharField(max_length=64, blank=True)
    diff = models.TextField(blank=True)
    log = models.TextField(blank=True, help_text="What m4 and sendmail printed.")
    installed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"build {self.build_id} of {self.server} ({self.status})"

    @property
    def build_id(self) -> str:
        return f"mailadmin-b{self.pk}"

    def celery_queue(self) -> str:
        return self.server.celery_queue


class InstallJob(WorkItem):
    """Installing a finished build (or reinstalling an earlier one: a rollback) and reloading the daemon."""

    task_name = "mailadmin.tasks.run_install"

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="installs")
    build = models.ForeignKey(ConfigBuild, on_delete=models.PROTECT, related_name="installs")
    rollback = models.BooleanField(default=False)
    output = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"install of {self.build.build_id} on {self.server} ({self.status})"

    def celery_queue(self) -> str:
        return self.server.celery_queue


class HostSnapshot(models.Model):
    """What the agent last saw of one instance; the dashboard and the other pages read this, never the MTA."""

    server = models.OneToOneField(MailServer, on_delete=models.CASCADE, related_name="snapshot")
    taken_at = models.DateTimeField()
    daemon = models.JSONField(default=dict, blank=True, help_text="pid, process_alive, banner, banner_error.")
    version = models.JSONField(default=dict, blank=True, help_text="version, compile_options, error.")
    spool = models.JSONField(default=dict, blank=True, help_text="Spool file counts by kind.")
    cf = models.JSONField(default=dict, blank=True, help_text="The installed cf: path, sha256, stamp, options.")
    cf_text = models.TextField(blank=True)
    mc = models.JSONField(default=dict, blank=True, help_text="The installed .mc: path, text, truncated, error.")
    log = models.JSONField(default=dict, blank=True, help_text="The log tail: path, lines, note.")
    tls = models.JSONField(default=dict, blank=True, help_text="Certificate directory facts and the EHLO reply.")
    error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"snapshot of {self.server} at {self.taken_at:%Y-%m-%d %H:%M:%S}"


class AgentRequest(WorkItem):
    """A question only the host's agent can answer (a map lookup, a STARTTLS probe, a message
    preview), asked by a page and answered as this row's result."""

    task_name = "mailadmin.tasks.run_agent_request"

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="agent_requests")
    kind = models.CharField(max_length=40, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} on {self.server} ({self.status})"

    def celery_queue(self) -> str:
        return self.server.celery_queue
