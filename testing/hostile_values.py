"""Hostile input for every typed field of the catalog.

`hostile_values(canary)` are values no field may accept: each carries m4, shell, sendmail.cf or
access-map syntax, a macro-name word, a control or non-ASCII character, or is far too long.
Payloads that would run a command try to create `canary`, so a test can prove none ran.

`probe_corpus(canary)` is research/m4_probe.py's corpus (62 payloads × 6 variants): a mix of
hostile and harmless-looking values; what a field accepts from it must come out of m4 verbatim.
"""

from __future__ import annotations

# Lower-case macro names (GNU m4 builtins and sendmail's own): valid host name labels and path
# components that m4 rewrites or swallows.
LOWER_MACRO_WORDS = (
    "builtin changecom changequote debugfile debugmode decr define defn divert divnum dnl dumpdef errprint "
    "esyscmd eval format hpux ifdef ifelse include incr index indir len lower m4exit m4wrap maketemp mkstemp "
    "patsubst popdef pushdef regexp shift sinclude strcasecmp substr syscmd sysval traceoff traceon translit "
    "undefine undivert"
).split()

# sendmail cf macros and m4 variables that hold text: a word like this is replaced by that text.
UPPER_MACRO_WORDS = (
    "ALIAS_FILE SMART_HOST MAIL_HUB LUSER_RELAY QUEUE_DIR HELP_FILE STATUS_FILE MAIL_SETTINGS_DIR FEATURE "
    "MAILER OSTYPE DOMAIN VERSIONID LOCAL_CONFIG LOCAL_RULESETS DAEMON_OPTIONS INPUT_MAIL_FILTER "
    "SMTP_MAILER_FLAGS RELAY_MAILER_ARGS confLOG_LEVEL confCF_VERSION confPID_FILE __file__ __line__ "
    "__program__ __unix__ __gnu__ _CF_DIR_ _ARG_ _OPTION _ACCESS_TABLE_ sm_version"
).split()


def _m4_payloads(canary: str) -> list[str]:
    touch = f"touch {canary}"
    return [
        f"esyscmd({touch})",
        f"syscmd({touch})",
        f"esyscmd(`{touch}')",
        f"x')dnl esyscmd(`{touch}')dnl",
        f"x')syscmd({touch})dnl",
        f"`'esyscmd({touch})`'",
        f"$1esyscmd({touch})",
        f"x)esyscmd({touch})",
        f"m4wrap(`syscmd({touch})')",
        f"define(`confPID_FILE',`{canary}')",
        f"include({canary})",
        "include(/etc/shadow)",
        "sinclude(/etc/passwd)",
        "changequote([,])",
        "changequote(<<,>>)syscmd(id)",
        "changecom(#)",
        "divert(-1)",
        "undivert(1)",
        "m4exit(1)",
        "undefine(`OSTYPE')",
        "translit(x,x,y)",
        "patsubst(a,a,b)",
        "indir(`syscmd',`id')",
        "builtin(`syscmd',`id')",
        "eval(1+1)",
        "len(abc)",
        "`id'",
        "x'",
        "x`",
        "'",
        "`",
        "a'b",
        "a)b",
        "(a",
        "x)",
        "a,b)",
        "defn(`dnl')",
    ]


def _syntax_payloads(canary: str) -> list[str]:
    return [
        # sendmail.cf and access-map syntax
        "$1",
        "${x}",
        "$j",
        "$&{client_addr}",
        "$#error",
        "mail$x.example.com",
        "a#b",
        "#O QueueDirectory=/tmp/evil",
        "5000 #comment",
        "a\\b",
        "%2e%2e/etc/passwd",
        "100%",
        'a"b',
        '"quoted"',
        "a;b",
        "a|b",
        "a&b",
        "a*b",
        "a?b",
        "a<b>",
        "{x}",
        "[10.0.0.1];id",
        "[1.2.3.4]]",
        "[[1.2.3.4]",
        "[]",
        "[1.2.3.4]x",
        # shell
        f"/tmp/x;touch {canary}",
        f"$(touch {canary})",
        f"`touch {canary}`",
        f"|touch {canary}",
        f"&& touch {canary}",
        "/tmp/$(id)",
        "/tmp/`id`",
        "|/bin/sh",
        "x; rm -rf /",
        # line breaks, control characters, NUL: extra cf lines and access-map rows
        "5000\nConnect:10 RELAY",
        "5000\r\nConnect:10 RELAY",
        "10\nTo:victim.example RELAY",
        "2\tRELAY",
        "OK\nConnect:0 RELAY",
        "relay.example.com\nO QueueDirectory=/tmp/evil",
        "/etc/mail/x.pem\nO RunAsUser=root",
        "mail.example.com\r",
        "\n",
        "\r",
        "a\rb",
        "a\x00b",
        "/etc/mail/x\x00.pem",
        "\x00",
        "x\x1b[31m",
        "x\x7f",
        "a\x0bb",
        "a\x0cb",
        "\tmail.example.com",
    ]


def _standalone_payloads() -> list[str]:
    # Hostile only as a whole: put inside a longer value, a separator or `..` turns harmless.
    return [
        # surrounding whitespace and empty list items
        " relay.example.com",
        "relay.example.com ",
        " ",
        "a, ,b",
        "a,,b",
        ",a",
        "a,",
        # path traversal
        "../../etc/passwd",
        "/etc/mail/../../root/.ssh/id_rsa",
        "..",
        "/..",
        "etc/../../x",
        "/etc/mail/../sendmail.cf",
        # an empty value where one is required
        "",
    ]


def _unicode_payloads() -> list[str]:
    return [
        "ｍａｉｌ.example.com",  # fullwidth
        "mаil.example.com",  # Cyrillic a
        "mail.exаmple.com",
        "１２３",
        "/etc/mail/сert.pem",
        "relay.example.com\u200b",  # zero-width space
        "relay\u2028example.com",  # line separator
        "relay\u2029example.com",  # paragraph separator
        "example.com\u00a0",  # no-break space
        "\u202eexample.com",  # right-to-left override
        "x\u037eid",  # Greek question mark, looks like ;
        "（id）",  # fullwidth parentheses
        "\u2018lower\u2019.example.com",
        "\u02bcx\u02bc",  # modifier apostrophe
        "bücher.example",
        "münchen.de",
        "\ufeffmail.example.com",  # byte order mark
        "mail.example.com\u0085",  # next line (C1)
        "é",
        "/etc/ssl/\u00adcert.pem",  # soft hyphen
    ]


def _long_payloads() -> list[str]:
    return [
        "a" * 10_000,
        "x." * 5_000 + "com",
        "/" + "a/" * 5_000 + "b",
        "1" * 10_000,
        "a" * 513,
        ("a" * 63 + ".") * 8 + "com",
        "/" + "p" * 600,
        "h" * 600,
    ]


def _macro_word_values() -> list[str]:
    values: list[str] = []
    for word in LOWER_MACRO_WORDS:
        values += [word, f"{word}.example.com", f"mx.{word}.example", f"/etc/mail/{word}/cert.pem", f"{word}-x"]
    for word in UPPER_MACRO_WORDS:
        values += [word, f"{word}.x", f"mx.{word}.example", f"/etc/mail/{word}"]
    return values


def hostile_values(canary: str) -> list[str]:
    """Values every typed field must refuse; distinct, in a stable order."""
    variants: list[str] = []
    for payload in _m4_payloads(canary) + _syntax_payloads(canary):
        # The payload behind and inside plausible values: it must not hide there either.
        variants += [payload, "relay.example.com" + payload, payload + ".example.com", "/etc/mail/" + payload]
    everything = variants + _standalone_payloads() + _unicode_payloads() + _long_payloads() + _macro_word_values()
    return list(dict.fromkeys(everything))


# research/m4_probe.py's core payloads, with its /tmp/PWN replaced by the canary.
def _probe_core(canary: str) -> list[str]:
    return [
        f"x')dnl esyscmd(`touch {canary}')dnl",
        f"x')syscmd(touch {canary})dnl",
        "esyscmd(id)",
        "syscmd(id)",
        "`id'",
        "x'",
        "x`",
        "include(/etc/shadow)",
        "sinclude(/etc/passwd)",
        "changequote([,])",
        "changecom(#)",
        "dnl",
        "divert(-1)",
        "undivert",
        "m4exit(1)",
        "m4wrap(`syscmd(id)')",
        "define(`confX',`y')",
        "$1",
        "${x}",
        "a,b",
        "a)b",
        "(a",
        "a#b",
        "a\nO QueueDirectory=/tmp/evil",
        "a\rb",
        "a\x00b",
        "a b",
        "a\tb",
        "../../etc/passwd",
        "/etc/mail/../../root/.ssh/id_rsa",
        "/tmp/x;id",
        "/tmp/$(id)",
        "/tmp/`id`",
        "|/bin/sh",
        "lower.example.com",
        "dnl.example.com",
        "divert.example.com",
        "__file__.example.com",
        "ALIAS_FILE.example.com",
        "mail.SMTP_MAILER_FLAGS.com",
        "FEATURE.example",
        "MAILER.example",
        "-oQ/tmp",
        "-C/tmp/evil.cf",
        "1h;id",
        "0x10",
        "1e9",
        "-1",
        "99999999999",
        "１２３",
        "relay.example.com.",
        "a" * 600,
        "",
        " relay.example.com",
        "xn--bcher-kva.example",
        "/etc/ssl/dnl/cert.pem",
        "/etc/ssl/certs/translit.pem",
        "[10.0.0.1];id",
        "[1.2.3.4]",
        "HIGH:!aNULL:!MD5",
        "HIGH:!aNULL`'esyscmd(id)",
        "DEFAULT@SECLEVEL=2",
    ]


def probe_corpus(canary: str) -> list[str]:
    """m4_probe.py's variants: alone, after a host, before a domain, under /etc/mail/, upper case, after 1h."""
    out: list[str] = []
    for payload in _probe_core(canary):
        out += [
            payload,
            "relay.example.com" + payload,
            payload + ".example.com",
            "/etc/mail/" + payload,
            payload.upper(),
            "1h" + payload,
        ]
    return out
