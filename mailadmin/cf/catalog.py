"""Every cf option and FEATURE the console manages, declared once.

Forms, validation, rendering (mcfile) and help pages are derived from here. Names, m4 names and
defaults come from Debian's sendmail-cf 8.17 tree (cf/m4/proto.m4 `_OPTION(Name, `m4', `default')`
lines, feature/*.m4 for FEATURE arguments); mailadmin/tests/test_catalog.py checks them against the
installed tree. `since` is the release that introduced the option (long option names date from
8.7, so older ones say 8.7); `revised` lists releases that changed what it accepts.

Most entries are `O` options set with define(`confX', `value'). A few are *macro-style*: SmartHost
is define(`SMART_HOST') and shows up as a `DS` line, QueueDirectory is define(`QUEUE_DIR'), and
DaemonPortOptions is a DAEMON_OPTIONS(`…') call. `OptionSpec.kind` says which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from mailadmin.cf.m4safe import (
    ArgumentValue,
    BoolValue,
    ChoiceOrPathValue,
    CipherListValue,
    DaemonPortValue,
    EnumValue,
    FlagValue,
    HostnameValue,
    IntervalValue,
    ListValue,
    MailboxValue,
    MillisecondsValue,
    NumberValue,
    PathValue,
    RelayValue,
    ValueType,
    WordValue,
)

# How an option is written in the .mc.
OPTION = "option"  # define(`confX', `value')  →  O Name=value
DEFINE = "define"  # define(`MACRO', `value')  →  the cf line in cf_template
CALL = "call"  # MACRO(`value')             →  the cf line in cf_template

STARTTLS = "STARTTLS"
MILTER = "MILTER"


@dataclass(frozen=True)
class OptionSpec:
    name: str
    m4: str
    type: ValueType
    default: str
    group: str
    help: str
    requires: tuple[str, ...] = ()
    compile_flag: str | None = None
    since: str = "8.7"
    revised: tuple[str, ...] = ()
    kind: str = OPTION
    cf_template: str = ""

    @property
    def macro_style(self) -> bool:
        """True for entries that are not a define(`confX') — SMART_HOST, QUEUE_DIR, DAEMON_OPTIONS …"""
        return self.kind != OPTION

    @property
    def cf_line(self) -> bool:
        """True when the value shows up in sendmail.cf as `O Name=value` (see expected_line)."""
        return self.expected_line("") == f"O {self.name}="

    def expected_line(self, value: str) -> str:
        """The exact sendmail.cf line a build with this value must contain."""
        template = self.cf_template or "O {name}={value}"
        return template.format(name=self.name, value=value)

    def mc_line(self, value: str) -> str:
        """The .mc text that sets this option (without the trailing dnl)."""
        if self.kind == CALL:
            return f"{self.m4}(`{value}')"
        return f"define(`{self.m4}', `{value}')"


TLS = "TLS"
# The cf options that name a file or directory sendmail reads for STARTTLS (the agent reports their
# modes; the TLS pages list them).
TLS_FILE_OPTIONS = (
    "CACertFile",
    "CACertPath",
    "ServerCertFile",
    "ServerKeyFile",
    "ClientCertFile",
    "ClientKeyFile",
    "CRLFile",
    "DHParameters",
)
CONNECTIONS = "Connections and rate limits"
RELAYING = "Delivery and relaying"
QUEUE = "Queue"
TIMEOUTS = "Timeouts"
FILES = "Files"
LOGGING = "Logging and milters"
SECURITY = "Privacy and security"
LIMITS = "Limits and load"
MASQUERADING = "Masquerading"

_PRIVACY_FLAGS = (
    "public",
    "needmailhelo",
    "needexpnhelo",
    "needvrfyhelo",
    "noexpn",
    "novrfy",
    "noetrn",
    "noverb",
    "restrictmailq",
    "restrictqrun",
    "restrictexpand",
    "noreceipts",
    "nobodyreturn",
    "goaway",
    "authwarnings",
    "noactualrecipient",
)
_DONT_BLAME_FLAGS = (
    "safe",
    "AssumeSafeChown",
    "ClassFileInUnsafeDirPath",
    "DontWarnForwardFileInUnsafeDirPath",
    "ErrorHeaderInUnsafeDirPath",
    "FileDeliveryToHardLink",
    "FileDeliveryToSymLink",
    "ForwardFileInGroupWritableDirPath",
    "ForwardFileInUnsafeDirPath",
    "ForwardFileInUnsafeDirPathSafe",
    "GroupReadableKeyFile",
    "GroupReadableSASLDBFile",
    "GroupReadableDefaultAuthInfoFile",
    "GroupWritableAliasFile",
    "GroupWritableDirPathSafe",
    "GroupWritableForwardFile",
    "GroupWritableForwardFileSafe",
    "GroupWritableIncludeFile",
    "GroupWritableIncludeFileSafe",
    "GroupWritableSASLDBFile",
    "HelpFileInUnsafeDirPath",
    "IncludeFileInGroupWritableDirPath",
    "IncludeFileInUnsafeDirPath",
    "IncludeFileInUnsafeDirPathSafe",
    "InsufficientEntropy",
    "LinkedAliasFileInWritableDir",
    "LinkedClassFileInWritableDir",
    "LinkedForwardFileInWritableDir",
    "LinkedIncludeFileInWritableDir",
    "LinkedMapInWritableDir",
    "LinkedServiceSwitchFileInWritableDir",
    "MapInUnsafeDirPath",
    "NonRootSafeAddr",
    "RunProgramInUnsafeDirPath",
    "RunWritableProgram",
    "TrustStickyBit",
    "WorldWritableAliasFile",
    "WorldWritableForwardfile",
    "WorldWritableIncludefile",
    "WriteMapToHardLink",
    "WriteMapToSymLink",
)


def _timeout(name: str, m4: str, default: str, help: str, **extra) -> OptionSpec:
    return OptionSpec(name, m4, IntervalValue("m"), default, TIMEOUTS, help, **extra)


_OPTIONS: list[OptionSpec] = [
    # --- TLS -----------------------------------------------------------------------------------
    OptionSpec(
        "CACertFile",
        "confCACERT",
        PathValue(),
        "",
        TLS,
        "PEM file with the CA certificates sendmail trusts when it verifies a peer's certificate, "
        "and whose names it sends to clients as acceptable issuers.",
        compile_flag=STARTTLS,
        since="8.11",
    ),
    OptionSpec(
        "CACertPath",
        "confCACERT_PATH",
        PathValue(),
        "",
        TLS,
        "Directory of CA certificates, each reachable through its OpenSSL hash link; used to verify peers.",
        compile_flag=STARTTLS,
        since="8.11",
    ),
    OptionSpec(
        "ServerCertFile",
        "confSERVER_CERT",
        PathValue(),
        "",
        TLS,
        "Certificate (PEM) this server presents to clients that issue STARTTLS.",
        compile_flag=STARTTLS,
        since="8.11",
    ),
    OptionSpec(
        "ServerKeyFile",
        "confSERVER_KEY",
        PathValue(),
        "",
        TLS,
        "Private key of the server certificate. sendmail silently drops STARTTLS if the group or others can read it.",
        compile_flag=STARTTLS,
        since="8.11",
    ),
    OptionSpec(
        "ClientCertFile",
        "confCLIENT_CERT",
        PathValue(),
        "",
        TLS,
        "Certificate sendmail presents when it is the client, delivering to another server.",
        compile_flag=STARTTLS,
        since="8.11",
    ),
    OptionSpec(
        "ClientKeyFile",
        "confCLIENT_KEY",
        PathValue(),
        "",
        TLS,
        "Private key of the client certificate.",
        compile_flag=STARTTLS,
        since="8.11",
    ),
    OptionSpec(
        "CRLFile",
        "confCRL",
        PathValue(),
        "",
        TLS,
        "PEM file with certificate revocation lists; a peer certificate listed there fails verification.",
        compile_flag=STARTTLS,
        since="8.13",
    ),
    OptionSpec(
        "CRLPath",
        "confCRL_PATH",
        PathValue(),
        "",
        TLS,
        "Directory of CRLs reachable through their OpenSSL hash links (name.r0).",
        compile_flag=STARTTLS,
        since="8.16",
    ),
    OptionSpec(
        "DHParameters",
        "confDH_PARAMETERS",
        ChoiceOrPathValue(("none", "i", "1", "2", "5")),
        "",
        TLS,
        "Diffie-Hellman parameters for the server: a PEM file (e.g. from openssl dhparam), or `i` for "
        "the built-in 2048-bit group (sendmail's own default), `none` to turn DH off.",
        compile_flag=STARTTLS,
        since="8.11",
    ),
    _timeout(
        "Timeout.starttls",
        "confTO_STARTTLS",
        "1h",
        "How long the client side waits for the reply to STARTTLS.",
        compile_flag=STARTTLS,
        since="8.12",
    ),
    OptionSpec(
        "TLSSrvOptions",
        "confTLS_SRV_OPTIONS",
        ListValue(EnumValue(("V", "C"))),
        "",
        TLS,
        "Server-side STARTTLS flags: V stops asking clients for a certificate (so none can be used "
        "for relaying); C lets the server run TLS without a certificate of its own.",
        compile_flag=STARTTLS,
        since="8.12",
    ),
    OptionSpec(
        "CipherList",
        "confCIPHER_LIST",
        CipherListValue(),
        "",
        TLS,
        "OpenSSL cipher list for STARTTLS in both directions, e.g. HIGH:!aNULL:!MD5.",
        compile_flag=STARTTLS,
        since="8.15",
    ),
    OptionSpec(
        "TLSFallbacktoClear",
        "confTLS_FALLBACK_TO_CLEAR",
        BoolValue(),
        "",
        TLS,
        "After a failed TLS handshake on an outgoing connection, try again at once without STARTTLS.",
        compile_flag=STARTTLS,
        since="8.16",
    ),
    OptionSpec(
        "CertFingerprintAlgorithm",
        "confCERT_FINGERPRINT_ALGORITHM",
        EnumValue(("md5", "sha1", "sha224", "sha256", "sha384", "sha512")),
        "",
        TLS,
        "Digest used for the ${cert_fp} macro and for fingerprint entries in the access map (md5 if unset).",
        compile_flag=STARTTLS,
        since="8.15",
    ),
    OptionSpec(
        "DANE",
        "confDANE",
        EnumValue(("true", "false")),
        "false",
        TLS,
        "Check TLSA records (DANE-EE) of the servers sendmail delivers to; needs a validating local resolver.",
        compile_flag="DANE",
        since="8.16",
    ),
    # --- Connections and rate limits --------------------------------------------------------------
    OptionSpec(
        "DaemonPortOptions",
        "DAEMON_OPTIONS",
        DaemonPortValue(),
        "",
        CONNECTIONS,
        "The listening socket: port, address, a name for the logs, family and modifier letters. "
        "Without it sendmail listens on port 25 on every interface.",
        kind=CALL,
    ),
    OptionSpec(
        "MaxDaemonChildren",
        "confMAX_DAEMON_CHILDREN",
        NumberValue(0, 100_000),
        "0",
        CONNECTIONS,
        "Refuse new connections while this many children are already running (0: no limit).",
        since="8.8",
    ),
    OptionSpec(
        "ConnectionRateThrottle",
        "confCONNECTION_RATE_THROTTLE",
        NumberValue(0, 100_000),
        "0",
        CONNECTIONS,
        "Accept at most this many connections per second and daemon; the rest wait (0: no limit).",
        since="8.8",
    ),
    OptionSpec(
        "ConnectionRateWindowSize",
        "confCONNECTION_RATE_WINDOW_SIZE",
        IntervalValue("s"),
        "60s",
        CONNECTIONS,
        "The window over which connections per client are counted for ratecontrol. Changing it "
        "changes what every ClientRate: row in the access map means.",
        since="8.13",
    ),
    OptionSpec(
        "RejectLogInterval",
        "confREJECT_LOG_INTERVAL",
        IntervalValue(None),
        "3h",
        CONNECTIONS,
        "While connections are being refused because of load, log that fact once per this interval.",
        since="8.13",
    ),
    OptionSpec(
        "BadRcptThrottle",
        "confBAD_RCPT_THROTTLE",
        NumberValue(0, 100_000),
        "0",
        CONNECTIONS,
        "After this many rejected recipients in one session, slow the client down by a second per "
        "further RCPT (0: never).",
        since="8.12",
    ),
    OptionSpec(
        "MaxNOOPCommands",
        "confMAX_NOOP_COMMANDS",
        NumberValue(0, 100_000),
        "20",
        CONNECTIONS,
        "How many commands that do no work (NOOP, VRFY, …) a client may send before it is slowed down.",
        since="8.14",
    ),
    # --- Delivery and relaying --------------------------------------------------------------------
    OptionSpec(
        "SmartHost",
        "SMART_HOST",
        RelayValue(allow_mailer=True),
        "",
        RELAYING,
        "Send all non-local mail through this relay instead of looking up MX records. Brackets "
        "([mail.example.com]) skip the MX lookup of the relay itself.",
        kind=DEFINE,
        cf_template="DS{value}",
    ),
    OptionSpec(
        "MailHub",
        "MAIL_HUB",
        RelayValue(allow_mailer=True),
        "",
        RELAYING,
        "Send mail for local users on to this host instead of delivering it here (a central mail store).",
        kind=DEFINE,
        cf_template="DH{value}",
    ),
    OptionSpec(
        "FallbackSmartHost",
        "confFALLBACK_SMARTHOST",
        RelayValue(),
        "",
        RELAYING,
        "Try this host when every MX host of a domain failed, as if it were the least preferred MX.",
        since="8.13",
    ),
    OptionSpec(
        "DeliveryMode",
        "confDELIVERY_MODE",
        EnumValue(("interactive", "background", "queueonly", "deferred")),
        "background",
        RELAYING,
        "Deliver while the client waits, in the background, or only queue the message for the next "
        "queue run (deferred also postpones map lookups).",
    ),
    OptionSpec(
        "DoubleBounceAddress",
        "confDOUBLE_BOUNCE_ADDRESS",
        MailboxValue(),
        "postmaster",
        RELAYING,
        "Where a bounce goes when the bounce itself cannot be delivered.",
        since="8.8",
    ),
    OptionSpec(
        "MaxMessageSize",
        "confMAX_MESSAGE_SIZE",
        NumberValue(0, 2_000_000_000),
        "0",
        RELAYING,
        "Largest message in bytes the server accepts, announced in the EHLO reply (0: no limit).",
    ),
    OptionSpec(
        "MaxRecipientsPerMessage",
        "confMAX_RCPTS_PER_MESSAGE",
        NumberValue(0, 1_000_000),
        "0",
        RELAYING,
        "Recipients accepted per message; further RCPT commands get a temporary error (0: no limit).",
        since="8.9",
    ),
    OptionSpec(
        "MaxHopCount",
        "confMAX_HOP",
        NumberValue(1, 1000),
        "25",
        RELAYING,
        "A message with more Received: headers than this is treated as looping and bounced.",
    ),
    OptionSpec(
        "HeloName",
        "confHELO_NAME",
        HostnameValue(),
        "",
        RELAYING,
        "The name sendmail gives in its own HELO/EHLO when it delivers (the host name if unset).",
        since="8.14",
    ),
    OptionSpec(
        "EightBitMode",
        "confEIGHT_BIT_HANDLING",
        EnumValue(("pass8", "mimefy", "strict")),
        "pass8",
        RELAYING,
        "What to do with 8-bit mail that was not declared as such: pass it on, convert it to MIME, or refuse it.",
    ),
    # --- Queue ------------------------------------------------------------------------------------
    OptionSpec(
        "QueueDirectory",
        "QUEUE_DIR",
        PathValue(),
        "/var/spool/mqueue",
        QUEUE,
        "Directory that holds the mail queue.",
        kind=DEFINE,
        cf_template="O QueueDirectory={value}",
    ),
    OptionSpec(
        "QueueSortOrder",
        "confQUEUE_SORT_ORDER",
        EnumValue(("priority", "host", "filename", "random", "modification", "time", "none")),
        "priority",
        QUEUE,
        "Order of a queue run. filename, modification and none avoid reading every queue file first; "
        "none does not sort at all.",
        revised=("8.13",),
    ),
    OptionSpec(
        "SuperSafe",
        "confSAFE_QUEUE",
        EnumValue(("True", "False", "Interactive", "PostMilter")),
        "True",
        QUEUE,
        "When the queue file is written and synced to disk. PostMilter waits until all milters have "
        "accepted the message; Interactive suits DeliveryMode interactive. Keep it True unless you know why.",
        revised=("8.13",),
    ),
    OptionSpec(
        "MinQueueAge",
        "confMIN_QUEUE_AGE",
        IntervalValue("m"),
        "30m",
        QUEUE,
        "A queued message is retried at most this often, however frequently the queue is run.",
    ),
    OptionSpec(
        "MaxQueueRunSize",
        "confMAX_QUEUE_RUN_SIZE",
        NumberValue(0, 10_000_000),
        "0",
        QUEUE,
        "Work on at most this many messages per queue run (0: all).",
    ),
    OptionSpec(
        "MaxQueueChildren",
        "confMAX_QUEUE_CHILDREN",
        NumberValue(0, 100_000),
        "",
        QUEUE,
        "Upper limit on processes working the queue at the same time.",
        since="8.12",
    ),
    OptionSpec(
        "MaxRunnersPerQueue",
        "confMAX_RUNNERS_PER_QUEUE",
        NumberValue(1, 100_000),
        "1",
        QUEUE,
        "Queue runner processes started per queue group.",
        since="8.12",
    ),
    OptionSpec(
        "HostStatusDirectory",
        "confHOST_STATUS_DIRECTORY",
        PathValue(),
        "",
        QUEUE,
        "Directory where the status of remote hosts is kept, so that queue runs share what they learnt "
        "(unset: status is kept per process only).",
        since="8.8",
    ),
    # --- Limits and load ---------------------------------------------------------------------------
    OptionSpec(
        "QueueLA",
        "confQUEUE_LA",
        NumberValue(0, 10_000),
        "8",
        LIMITS,
        "Above this load average, accept mail but only queue it.",
    ),
    OptionSpec(
        "RefuseLA",
        "confREFUSE_LA",
        NumberValue(0, 10_000),
        "12",
        LIMITS,
        "Above this load average, refuse incoming SMTP connections.",
    ),
    OptionSpec(
        "DelayLA",
        "confDELAY_LA",
        NumberValue(0, 10_000),
        "0",
        LIMITS,
        "Above this load average, sleep a second before answering each SMTP command (0: never).",
        since="8.12",
    ),
    OptionSpec(
        "MinFreeBlocks",
        "confMIN_FREE_BLOCKS",
        NumberValue(0, 2_000_000_000),
        "100",
        LIMITS,
        "Refuse mail with a temporary error when the queue file system has fewer free blocks than this.",
    ),
    OptionSpec(
        "MaxHeadersLength",
        "confMAX_HEADERS_LENGTH",
        NumberValue(0, 100_000_000),
        "32768",
        LIMITS,
        "Largest total size in bytes of a message's headers.",
        since="8.10",
    ),
    # --- Timeouts ----------------------------------------------------------------------------------
    _timeout("Timeout.initial", "confTO_INITIAL", "5m", "Wait for the other server's greeting."),
    _timeout("Timeout.connect", "confTO_CONNECT", "5m", "Wait for an outgoing connect() to succeed."),
    _timeout(
        "Timeout.iconnect",
        "confTO_ICONNECT",
        "5m",
        "Like Timeout.connect, but for the first delivery attempt of a message.",
        since="8.8",
    ),
    _timeout(
        "Timeout.aconnect",
        "confTO_ACONNECT",
        "0s",
        "Total time allowed for trying all addresses of a host (0s: no overall limit).",
        since="8.12",
    ),
    _timeout("Timeout.helo", "confTO_HELO", "5m", "Wait for the reply to HELO or EHLO."),
    _timeout("Timeout.mail", "confTO_MAIL", "10m", "Wait for the reply to MAIL FROM."),
    _timeout("Timeout.rcpt", "confTO_RCPT", "1h", "Wait for the reply to RCPT TO."),
    _timeout("Timeout.datainit", "confTO_DATAINIT", "5m", "Wait for the reply to DATA."),
    _timeout("Timeout.datablock", "confTO_DATABLOCK", "1h", "Wait for each block of message data."),
    _timeout("Timeout.datafinal", "confTO_DATAFINAL", "1h", "Wait for the reply to the final dot."),
    _timeout("Timeout.rset", "confTO_RSET", "5m", "Wait for the reply to RSET."),
    _timeout("Timeout.quit", "confTO_QUIT", "2m", "Wait for the reply to QUIT."),
    _timeout("Timeout.misc", "confTO_MISC", "2m", "Wait for replies to other commands (NOOP, VERB …)."),
    _timeout("Timeout.command", "confTO_COMMAND", "1h", "As a server, wait this long for the client's next command."),
    _timeout("Timeout.ident", "confTO_IDENT", "5s", "Wait for an IDENT reply about the client (0s: do not ask)."),
    _timeout(
        "Timeout.queuereturn",
        "confTO_QUEUERETURN",
        "5d",
        "Bounce a message that could not be delivered for this long.",
    ),
    _timeout(
        "Timeout.queuewarn",
        "confTO_QUEUEWARN",
        "4h",
        "Tell the sender once a message has been waiting in the queue this long.",
    ),
    _timeout(
        "Timeout.hoststatus",
        "confTO_HOSTSTATUS",
        "30m",
        "How long a remembered host status (e.g. down) is trusted before the host is tried again.",
        since="8.8",
    ),
    _timeout(
        "Timeout.control", "confTO_CONTROL", "2m", "Time limit for a command on the control socket.", since="8.10"
    ),
    _timeout("Timeout.lhlo", "confTO_LHLO", "2m", "Wait for the reply to LHLO from an LMTP mailer.", since="8.12"),
    _timeout("Timeout.auth", "confTO_AUTH", "10m", "Wait for each step of an SMTP AUTH exchange.", since="8.12"),
    # --- Files --------------------------------------------------------------------------------------
    OptionSpec(
        "PidFile",
        "confPID_FILE",
        PathValue(),
        "/var/run/sendmail.pid",
        FILES,
        "Where the daemon writes its process id (the console signals that pid). Since 8.13 the file "
        "is removed when sendmail exits.",
        since="8.10",
        revised=("8.13",),
    ),
    OptionSpec(
        "AliasFile",
        "ALIAS_FILE",
        PathValue(),
        "/etc/mail/aliases",
        FILES,
        "The aliases file (its database is built by newaliases).",
        kind=DEFINE,
        cf_template="O AliasFile={value}",
    ),
    OptionSpec(
        "HelpFile",
        "HELP_FILE",
        PathValue(),
        "/etc/mail/helpfile",
        FILES,
        "Text sendmail answers the SMTP HELP command with.",
        kind=DEFINE,
        cf_template="O HelpFile={value}",
    ),
    OptionSpec(
        "StatusFile",
        "STATUS_FILE",
        PathValue(),
        "",
        FILES,
        "File for delivery statistics (read by mailstats); statistics are kept only if it exists.",
        kind=DEFINE,
        cf_template="O StatusFile={value}",
    ),
    OptionSpec(
        "ControlSocketName",
        "confCONTROL_SOCKET_NAME",
        PathValue(),
        "",
        FILES,
        "Unix socket on which the daemon accepts control commands (status, restart, shutdown).",
        since="8.10",
    ),
    OptionSpec(
        "DeadLetterDrop",
        "confDEAD_LETTER_DROP",
        PathValue(),
        "",
        FILES,
        "Last resort for mail that can be neither delivered nor returned.",
        since="8.10",
    ),
    OptionSpec(
        "ServiceSwitchFile",
        "confSERVICE_SWITCH_FILE",
        PathValue(),
        "/etc/mail/service.switch",
        FILES,
        "Where sendmail reads which sources (files, dns, nis) to use for hosts, aliases and passwd.",
    ),
    OptionSpec(
        "HostsFile",
        "confHOSTS_FILE",
        PathValue(),
        "/etc/hosts",
        FILES,
        "The hosts file used when the service switch says files.",
    ),
    OptionSpec(
        "SafeFileEnvironment",
        "confSAFE_FILE_ENV",
        PathValue(),
        "",
        FILES,
        "Deliveries to files happen chrooted to this directory and only to regular files.",
    ),
    # --- Logging and milters ---------------------------------------------------------------------------
    OptionSpec(
        "LogLevel",
        "confLOG_LEVEL",
        NumberValue(0, 99),
        "10",
        LOGGING,
        "How much sendmail logs: 9 logs every delivery, 10 adds inbound connections and more, 14+ is for debugging.",
    ),
    OptionSpec(
        "ProcessTitlePrefix",
        "confPROCESS_TITLE_PREFIX",
        WordValue(),
        "",
        LOGGING,
        "Text put in front of sendmail's process titles, to tell instances apart in ps.",
        since="8.10",
    ),
    OptionSpec(
        "InputMailFilters",
        "confINPUT_MAIL_FILTERS",
        ListValue(WordValue()),
        "",
        LOGGING,
        "Milters applied to incoming mail, in this order; each must also be declared with "
        "INPUT_MAIL_FILTER or MAIL_FILTER in the .mc.",
        compile_flag=MILTER,
        since="8.12",
        revised=("8.13",),
    ),
    OptionSpec(
        "Milter.LogLevel",
        "confMILTER_LOG_LEVEL",
        NumberValue(0, 99),
        "",
        LOGGING,
        "Log level for milter activity (LogLevel if unset).",
        compile_flag=MILTER,
        since="8.12",
    ),
    # --- Privacy and security ----------------------------------------------------------------------
    OptionSpec(
        "PrivacyOptions",
        "confPRIVACY_FLAGS",
        ListValue(EnumValue(_PRIVACY_FLAGS)),
        "authwarnings",
        SECURITY,
        "What clients may ask: e.g. noexpn and novrfy hide your users, needmailhelo insists on HELO, "
        "goaway sets most restrictions at once.",
    ),
    OptionSpec(
        "DontBlameSendmail",
        "confDONT_BLAME_SENDMAIL",
        ListValue(EnumValue(_DONT_BLAME_FLAGS)),
        "safe",
        SECURITY,
        "Relaxes sendmail's file permission checks, one named case at a time. Each flag makes the "
        "system easier to attack; use only what a warning in the log asks for.",
        since="8.9",
    ),
    OptionSpec(
        "DontProbeInterfaces",
        "confDONT_PROBE_INTERFACES",
        EnumValue(("True", "False", "loopback")),
        "False",
        SECURITY,
        "Do not add the names of all network interfaces to the local host names ($=w) at start-up.",
        since="8.9",
    ),
    OptionSpec(
        "RequiresDirfsync",
        "confREQUIRES_DIR_FSYNC",
        EnumValue(("true", "false")),
        "true",
        SECURITY,
        "Sync directories after renaming queue files, for file systems that need it to be crash safe.",
        since="8.13",
    ),
    OptionSpec(
        "SoftBounce",
        "confSOFT_BOUNCE",
        BoolValue(),
        "False",
        SECURITY,
        "Turn every permanent (5xx) error into a temporary one: useful while testing a new configuration.",
        since="8.14",
    ),
    # --- Masquerading ------------------------------------------------------------------------------
    # Macro calls, not define()s; cfhead.m4 turns them into the `DM` macro and the classes $=M, $=E.
    OptionSpec(
        "MasqueradeAs",
        "MASQUERADE_AS",
        HostnameValue(),
        "",
        MASQUERADING,
        "Rewrite the host part of sender addresses to this domain (headers; the envelope too with "
        "FEATURE(masquerade_envelope)), e.g. example.org for mail sent from mail1.example.org.",
        kind=CALL,
        cf_template="DM{value}",
    ),
    OptionSpec(
        "MasqueradeDomains",
        "MASQUERADE_DOMAIN",
        ListValue(HostnameValue(), " "),
        "",
        MASQUERADING,
        "Other domains whose addresses are masqueraded too (class $=M); with "
        "FEATURE(masquerade_entire_domain) their subdomains as well.",
        kind=CALL,
        cf_template="C{{M}}{value}",
    ),
    OptionSpec(
        "ExposedUsers",
        "EXPOSED_USER",
        ListValue(WordValue(), " "),
        "",
        MASQUERADING,
        "Local users whose addresses are never masqueraded (class $=E), e.g. root.",
        kind=CALL,
        cf_template="C{{E}}{value}",
    ),
]

OPTIONS: dict[str, OptionSpec] = {spec.name: spec for spec in _OPTIONS}
BY_M4: dict[str, OptionSpec] = {spec.m4: spec for spec in _OPTIONS}


def expected_lines(options: dict[str, str]) -> list[str]:
    """The sendmail.cf lines a build of these options must contain verbatim (the m4 oracle)."""
    return [OPTIONS[name].expected_line(value) for name, value in options.items()]


# ---------------------------------------------------------------------------------------------
# FEATUREs


@dataclass(frozen=True)
class ArgSpec:
    name: str
    type: ValueType
    required: bool = False
    help: str = ""

    @property
    def flag(self) -> FlagValue | None:
        """The fixed word this argument is, if it is one (a checkbox on the configuration page)."""
        return self.type if isinstance(self.type, FlagValue) else None


# Map types makemap can build, and the compile option the binary needs for each.
MAP_TYPES = {"hash": "NEWDB", "btree": "NEWDB", "dbm": "NDBM", "cdb": "CDB"}
_ACCESS_FLAGS = ("skip", "lookupdotdomain", "relaytofulladdress")


def _identity(args: tuple[str, ...]) -> tuple[str, ...]:
    return args


@dataclass(frozen=True)
class FeatureSpec:
    """A FEATURE(); `args` are what the administrator fills in, one value per ArgSpec.

    `to_m4` turns those values into FEATURE()'s own arguments and `from_m4` reverses it (None:
    the .mc uses a form the console does not model). `requires` are FEATUREs m4 insists on;
    `after` are FEATUREs that must come earlier in the .mc when both are used."""

    name: str
    args: tuple[ArgSpec, ...]
    help: str
    requires: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    notes: str = ""
    compile_flags: tuple[str, ...] = ()
    since: str = ""
    to_m4: Callable[[tuple[str, ...]], tuple[str, ...]] = _identity
    from_m4: Callable[[tuple[str, ...]], tuple[str, ...] | None] = _identity
    checks: tuple[Callable[[tuple[str, ...], set[str]], list[str]], ...] = ()


def _map_spec(map_type: str, path: str, temp_fail_marker: bool) -> str:
    if not map_type:
        return ""
    # access_db's own checks insist on -T<TMPF> so that a map lookup failure is a temporary error.
    return f"{map_type} -T<TMPF> {path}" if temp_fail_marker else f"{map_type} {path}"


def _parse_map_spec(spec: str, temp_fail_marker: bool) -> tuple[str, str] | None:
    if spec == "":
        return "", ""
    words = spec.split(" ")
    if temp_fail_marker and len(words) == 3 and words[1] == "-T<TMPF>":
        words = [words[0], words[2]]
    if len(words) != 2 or words[0] not in MAP_TYPES:
        return None
    return words[0], words[1]


def _access_db_to_m4(args: tuple[str, ...]) -> tuple[str, ...]:
    map_type, path, flags = (*args, "", "", "")[:3]
    return (_map_spec(map_type, path, True), *(flags.split(",") if flags else ()))


def _access_db_from_m4(args: tuple[str, ...]) -> tuple[str, ...] | None:
    spec = _parse_map_spec(args[0] if args else "", True)
    flags = [flag for flag in args[1:] if flag]
    if spec is None or any(flag not in _ACCESS_FLAGS for flag in flags) or len(flags) != len(args[1:]):
        return None
    return (*spec, ",".join(flags))


def _table_to_m4(args: tuple[str, ...]) -> tuple[str, ...]:
    map_type, path = (*args, "", "")[:2]
    return (_map_spec(map_type, path, False),)


def _table_from_m4(args: tuple[str, ...]) -> tuple[str, ...] | None:
    if len(args) > 1:
        return None
    return _parse_map_spec(args[0] if args else "", False)


def _mtamark_to_m4(args: tuple[str, ...]) -> tuple[str, ...]:
    return ("", args[0]) if args and args[0] else ()


def _mtamark_from_m4(args: tuple[str, ...]) -> tuple[str, ...] | None:
    # Only the `t` form: the reject message and lookup prefix are free text with sendmail macros.
    if args in ((), ("",)):
        return ("",)
    if len(args) == 2 and args[0] == "":
        return (args[1],)
    return None


def _map_pair(feature: str) -> Callable[[tuple[str, ...], set[str]], list[str]]:
    def check(args: tuple[str, ...], selected: set[str]) -> list[str]:
        map_type, path = (*args, "", "")[:2]
        if bool(map_type) != bool(path):
            return [f"FEATURE({feature}): give both the map type and the map file, or neither (for the default)."]
        return []

    return check


def _nodelay_needs_delay_checks(feature: str) -> Callable[[tuple[str, ...], set[str]], list[str]]:
    def check(args: tuple[str, ...], selected: set[str]) -> list[str]:
        if args and args[0] == "nodelay" and "delay_checks" not in selected:
            return [
                f"FEATURE({feature}) with `nodelay' needs FEATURE(delay_checks) as well "
                "(m4 would print *** ERROR and build a cf without the check)."
            ]
        return []

    return check


def _greet_pause_default_needs_access_db(args: tuple[str, ...], selected: set[str]) -> list[str]:
    if not (args and args[0]) and "access_db" not in selected:
        return [
            "FEATURE(greet_pause) without a default pause reads the pause from GreetPause: rows, "
            "so it needs FEATURE(access_db); or give a default pause in milliseconds."
        ]
    return []


def _flag_arg(word: str, label: str, meaning: str) -> ArgSpec:
    return ArgSpec(word, FlagValue(word, label, meaning), help=meaning)


# ratecontrol's and conncontrol's two arguments are positional flags (their .m4 files read _ARG_
# and _ARG2_): FEATURE(`ratecontrol', `', `terminate') is terminate alone.
_NODELAY_ARG = _flag_arg(
    "nodelay",
    "Check as the client connects (nodelay)",
    "Apply the limit at connect time even with FEATURE(delay_checks), so a Connect: OK or RELAY row "
    "no longer exempts a client. Needs FEATURE(delay_checks).",
)
_TERMINATE_ARG = _flag_arg(
    "terminate",
    "Refuse with 421 and close the connection (terminate)",
    "A client over its limit is refused with 421 4.3.2 and disconnected; without it the refusal is "
    "452 4.3.2, a temporary error within the session.",
)

_MAP_TYPE_ARG = ArgSpec(
    "map type",
    EnumValue(tuple(MAP_TYPES)),
    help="Database type makemap builds (hash unless you know better); leave empty for the default map.",
)

_FEATURES: list[FeatureSpec] = [
    FeatureSpec(
        "access_db",
        (
            _MAP_TYPE_ARG,
            ArgSpec("map file", PathValue(), help="The access map without its .db suffix, e.g. /etc/mail/access."),
            ArgSpec(
                "flags",
                ListValue(EnumValue(_ACCESS_FLAGS)),
                help="skip: a SKIP value stops the search; lookupdotdomain: also look up .domain; "
                "relaytofulladdress: allow To: rows with full addresses to RELAY.",
            ),
        ),
        "The access map: per-client and per-address decisions (OK, RELAY, REJECT …) and the rows that "
        "ratecontrol, conncontrol and greet_pause read.",
        to_m4=_access_db_to_m4,
        from_m4=_access_db_from_m4,
        checks=(_map_pair("access_db"),),
        since="8.9",
    ),
    FeatureSpec(
        "delay_checks",
        (
            ArgSpec("mode", EnumValue(("friend", "hater")), help="friend or hater: let recipients opt out or in."),
            ArgSpec(
                "no 8.10 compatibility",
                EnumValue(("n",)),
                help="Any value (Debian uses n) turns off the 8.10-compatible order of the checks.",
            ),
        ),
        "Move the client and sender checks to RCPT time, so that per-recipient exceptions work and "
        "authenticated clients skip them.",
        after=("access_db",),
        since="8.10",
    ),
    FeatureSpec(
        "greet_pause",
        (ArgSpec("pause", MillisecondsValue(), help="Default pause in milliseconds, e.g. 5000."),),
        "Wait before the 220 greeting and reject clients that talk first (554 … not accepting messages), "
        "a cheap defence against spam bots. GreetPause: rows in the access map set per-client pauses.",
        after=("access_db",),
        notes="Must come after access_db, or it ignores the access map.",
        checks=(_greet_pause_default_needs_access_db,),
        since="8.13",
    ),
    FeatureSpec(
        "ratecontrol",
        (_NODELAY_ARG, _TERMINATE_ARG),
        "Limit connections per client and time window (ConnectionRateWindowSize) with ClientRate: rows.",
        requires=("access_db",),
        after=("access_db", "delay_checks"),
        notes="Without nodelay a Connect: RELAY or OK row exempts a client.",
        checks=(_nodelay_needs_delay_checks("ratecontrol"),),
        since="8.13",
    ),
    FeatureSpec(
        "conncontrol",
        (_NODELAY_ARG, _TERMINATE_ARG),
        "Limit simultaneous connections per client with ClientConn: rows.",
        requires=("access_db",),
        after=("access_db", "delay_checks"),
        notes="Without nodelay a Connect: RELAY or OK row exempts a client.",
        checks=(_nodelay_needs_delay_checks("conncontrol"),),
        since="8.13",
    ),
    FeatureSpec(
        "mtamark",
        (
            ArgSpec(
                "temporary failures",
                EnumValue(("t",)),
                help="t: answer 451 when the TXT lookup fails temporarily instead of ignoring it.",
            ),
        ),
        "Experimental MTAMark: accept mail only from clients whose reverse DNS has a TXT record "
        "marking them as a mail server.",
        to_m4=_mtamark_to_m4,
        from_m4=_mtamark_from_m4,
        since="8.13",
    ),
    FeatureSpec(
        "use_client_ptr",
        (),
        "Let check_relay work on the client's PTR name as sendmail resolved it (${client_ptr}).",
        since="8.13",
    ),
    FeatureSpec(
        "local_lmtp",
        (
            ArgSpec("mailer path", PathValue(), help="An LMTP-capable local delivery program."),
            ArgSpec(
                "arguments",
                ListValue(ArgumentValue(), " ", max_items=8),
                help="Its argument vector, program name first (e.g. lmtp, or mail.local -l).",
            ),
        ),
        "Deliver local mail with an LMTP-capable program (mail.local by default).",
        notes="Must come before MAILER(local).",
        since="8.9",
    ),
    FeatureSpec(
        "smrsh",
        (ArgSpec("smrsh path", PathValue(), help="Where smrsh is, if not in sendmail's default place."),),
        "Run programs named in aliases and .forward files through the restricted shell smrsh.",
        notes="Must come before MAILER(local).",
    ),
    FeatureSpec(
        "virtusertable",
        (_MAP_TYPE_ARG, ArgSpec("map file", PathValue(), help="e.g. /etc/mail/virtusertable")),
        "Map addresses of virtual domains to real mailboxes, per address or per domain.",
        to_m4=_table_to_m4,
        from_m4=_table_from_m4,
        checks=(_map_pair("virtusertable"),),
    ),
    FeatureSpec(
        "mailertable",
        (_MAP_TYPE_ARG, ArgSpec("map file", PathValue(), help="e.g. /etc/mail/mailertable")),
        "Route mail for given domains through a chosen mailer and host.",
        to_m4=_table_to_m4,
        from_m4=_table_from_m4,
        checks=(_map_pair("mailertable"),),
    ),
    FeatureSpec(
        "always_add_domain",
        (ArgSpec("domain", HostnameValue(), help="Domain to add instead of this host's own."),),
        "Qualify local addresses with a domain even on locally delivered mail.",
        notes="Must come before MAILER(local).",
    ),
    FeatureSpec(
        "nocanonify",
        (
            ArgSpec(
                "canonify_hosts",
                EnumValue(("canonify_hosts",)),
                help="Still canonify addresses that have only a host name.",
            ),
        ),
        "Do not look host names up to canonify them: for gateways and hosts whose clients send "
        "fully qualified addresses.",
    ),
    FeatureSpec(
        "no_default_msa",
        (),
        "Do not open the default message submission port 587 (declare one with DaemonPortOptions if needed).",
        since="8.10",
    ),
    FeatureSpec(
        "accept_unresolvable_domains",
        (),
        "Accept senders whose domain does not resolve (needed where DNS is not fully available).",
    ),
    FeatureSpec(
        "relay_hosts_only",
        (),
        "Treat RELAY entries in the access map and class R as exact host names, not as whole domains.",
    ),
    FeatureSpec("use_cw_file", (), "Read this host's other names from local-host-names."),
    FeatureSpec("use_ct_file", (), "Read trusted users (who may set the sender with -f) from trusted-users."),
    FeatureSpec(
        "blocklist_recipients",
        (),
        "Let the access map reject mail to listed local users and addresses (To: rows).",
        requires=("access_db",),
        after=("access_db",),
        since="8.17",
    ),
    FeatureSpec(
        "dnsbl",
        (
            ArgSpec("zone", HostnameValue(), required=True, help="The DNS blocklist zone, e.g. bl.example.org."),
            ArgSpec(
                "action",
                EnumValue(("quarantine", "discard")),
                help="Instead of rejecting: quarantine or silently discard listed clients' mail.",
            ),
            ArgSpec(
                "temporary failures",
                EnumValue(("t",)),
                help="t: answer 451 when the blocklist cannot be reached instead of accepting.",
            ),
        ),
        "Reject clients whose address is listed in a DNS blocklist.",
        compile_flags=("DNSMAP",),
    ),
    FeatureSpec(
        "require_rdns",
        (),
        "Reject clients whose address has no working reverse DNS (temporary failure if the lookup fails "
        "temporarily or looks forged).",
        notes="Works best with delay_checks.",
        since="8.14",
    ),
    FeatureSpec(
        "block_bad_helo",
        (),
        "Reject clients that greet with an unqualified name or with one of this server's own names.",
        notes="The cf README says it needs delay_checks.",
        since="8.14",
    ),
    FeatureSpec(
        "badmx",
        (),
        "Reject senders whose domain's MX points at loopback, private (10/8) or 0.0.0.0 addresses.",
        compile_flags=("MAP_REGEX", "DNSMAP"),
        since="8.14",
    ),
]

# Masquerading FEATUREs: they change how MASQUERADE_AS and MASQUERADE_DOMAIN are applied.
_FEATURES += [
    FeatureSpec(
        "masquerade_envelope",
        (),
        "Masquerade the envelope sender and recipients too, not only the headers.",
    ),
    FeatureSpec(
        "masquerade_entire_domain",
        (),
        "Masquerade every host in the MASQUERADE_DOMAIN domains, subdomains included.",
    ),
    FeatureSpec(
        "allmasquerade",
        (),
        "Masquerade recipient headers (To:, Cc:) as well as the sender.",
        notes="Must come before MAILER(local).",
    ),
    FeatureSpec(
        "limited_masquerade",
        (),
        "Masquerade only the domains in MASQUERADE_DOMAIN, not this host's own names ($=w).",
    ),
    FeatureSpec(
        "local_no_masquerade",
        (),
        "Do not masquerade mail delivered locally.",
        notes="Must come before MAILER(local).",
    ),
]
# Class macros: every call adds its words to the class, so several lines are one list.
ACCUMULATING_CALLS = ("MASQUERADE_DOMAIN", "EXPOSED_USER")

FEATURES: dict[str, FeatureSpec] = {spec.name: spec for spec in _FEATURES}


def _padded(spec: FeatureSpec, args: tuple[str, ...]) -> tuple[str, ...]:
    return (*args, *("",) * (len(spec.args) - len(args)))


def trimmed(args: tuple[str, ...]) -> tuple[str, ...]:
    """Arguments without trailing empty ones, the form rows store."""
    end = len(args)
    while end and args[end - 1] == "":
        end -= 1
    return tuple(args[:end])


def check_features(
    selected: dict[str, tuple[str, ...]], *, reserved: frozenset[str], roots: tuple[str, ...] = ()
) -> list[str]:
    """What m4 would reject (or print *** ERROR for) in this set of FEATUREs, in plain words.

    `reserved` and `roots` are the instance's macro names and directories, as its agent reported them.
    """
    problems: list[str] = []
    names = set(selected)
    for name, args in selected.items():
        spec = FEATURES.get(name)
        if spec is None:
            problems.append(f"FEATURE({name}) is not one the console knows.")
            continue
        if len(args) > len(spec.args):
            problems.append(f"FEATURE({name}) takes at most {len(spec.args)} argument(s), not {len(args)}.")
            continue
        for arg_spec, value in zip(spec.args, _padded(spec, tuple(args)), strict=True):
            if value == "":
                if arg_spec.required:
                    problems.append(f"FEATURE({name}): {arg_spec.name} is required.")
                continue
            try:
                cleaned = arg_spec.type.clean(value, reserved=reserved, roots=roots)
            except ValidationError as exc:
                problems.extend(f"FEATURE({name}) {arg_spec.name}: {message}" for message in exc.messages)
                continue
            if cleaned != value:
                problems.append(f"FEATURE({name}) {arg_spec.name}: write it as ‘{cleaned}’.")
        for required in spec.requires:
            if required not in names:
                problems.append(f"FEATURE({name}) requires FEATURE({required}).")
        for check in spec.checks:
            problems.extend(check(_padded(spec, tuple(args)), names))
    return problems


def path_values(options: dict[str, str], features: dict[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """(what, path) for every path-typed value among these options and FEATURE values: the files and
    directories a build would have root's sendmail open, write or run (PidFile, DeadLetterDrop, map
    files, mailer programs …). The agent checks each against its own roots before a build or install.

    Names the catalog does not know are skipped; values are taken as given, not cleaned.
    """
    found: list[tuple[str, str]] = []
    for name, value in options.items():
        spec = OPTIONS.get(name)
        if spec is not None and isinstance(value, str):
            found.extend((name, path) for path in spec.type.paths(value))
    for name, args in features.items():
        spec = FEATURES.get(name)
        if spec is None:
            continue
        for arg_spec, value in zip(spec.args, args, strict=False):
            if isinstance(value, str):
                found.extend((f"FEATURE({name}) {arg_spec.name}", path) for path in arg_spec.type.paths(value))
    return found


def feature_warnings(selected: dict[str, tuple[str, ...]]) -> list[str]:
    """Combinations m4 accepts but that probably do not do what was meant."""
    warnings: list[str] = []
    if "block_bad_helo" in selected and "delay_checks" not in selected:
        warnings.append("FEATURE(block_bad_helo) is documented to need FEATURE(delay_checks).")
    pause = selected.get("greet_pause")
    if pause and pause[0] and "access_db" not in selected:
        warnings.append(
            "Without FEATURE(access_db), GreetPause: rows are ignored; every client gets the default pause."
        )
    return warnings


def _earlier(name: str) -> set[str]:
    """Every FEATURE that must come before this one, directly or through another."""
    found: set[str] = set()
    todo = list(FEATURES[name].after) if name in FEATURES else []
    while todo:
        dependency = todo.pop()
        if dependency not in found:
            found.add(dependency)
            todo.extend(FEATURES[dependency].after if dependency in FEATURES else ())
    return found


def must_precede(first: str, second: str) -> bool:
    """True if FEATURE(first) has to appear before FEATURE(second) in the .mc."""
    return first in _earlier(second)


def feature_order(names: Iterable[str]) -> list[str]:
    """The names in an order m4 accepts: catalog order, except that a FEATURE another one must
    follow (access_db before greet_pause, ratecontrol …) always comes first."""
    position = {name: index for index, name in enumerate(FEATURES)}
    pending = sorted(set(names), key=lambda n: (position.get(n, len(position)), n))
    ordered: list[str] = []
    while pending:
        ready = next(n for n in pending if not (_earlier(n) & set(pending)))
        ordered.append(ready)
        pending.remove(ready)
    return ordered


def feature_m4_args(name: str, args: tuple[str, ...]) -> tuple[str, ...]:
    """FEATURE()'s own arguments for the administrator's values (trailing empty ones dropped)."""
    spec = FEATURES[name]
    return trimmed(spec.to_m4(_padded(spec, tuple(args))))


def feature_values(name: str, m4_args: tuple[str, ...]) -> tuple[str, ...] | None:
    """The administrator's values behind FEATURE()'s arguments, or None for a form not modelled."""
    spec = FEATURES[name]
    values = spec.from_m4(trimmed(m4_args))
    if values is None or len(values) > len(spec.args):
        return None
    return trimmed(values)


def _compiled(compile_options: list[str]) -> set[str]:
    return {option.split("=", 1)[0] for option in compile_options}


def available(spec: OptionSpec | FeatureSpec, compile_options: list[str]) -> tuple[bool, str]:
    """Whether this sendmail binary (`sendmail -d0.1` compile options) can use the option or FEATURE."""
    needed = spec.compile_flags if isinstance(spec, FeatureSpec) else tuple(filter(None, [spec.compile_flag]))
    missing = [flag for flag in needed if flag not in _compiled(compile_options)]
    if missing:
        return False, f"this sendmail was built without {' and '.join(missing)} (see sendmail -d0.1)"
    return True, ""


def map_types_available(compile_options: list[str]) -> list[str]:
    """The map types this binary can read, for the map-type choice of access_db and the tables."""
    compiled = _compiled(compile_options)
    return [map_type for map_type, flag in MAP_TYPES.items() if flag in compiled]
