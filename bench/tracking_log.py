"""Message tracking against `grep -c` over the same mail log, at 10,000,000 lines.

It writes a mail log in the shapes the daemons here write, mixed like a busy relay's: most
messages sent at the first attempt, some deferred a few times first, some bounced (with the DSN
and the bounce's own lines), some refused before a queue id, some quarantined; one to five
recipients; STARTTLS lines; "did not issue MAIL" sessions; and a tenth of the lines from another
instance (another syslog tag), which the ingest must skip. Then, in one run:

- ingest: the agent's own code (tracking.agentside.ingest: follow the log from its checkpoint,
  parse, fold into trace rows) into a fresh database; lines/s against `grep -c TAG` reading the
  same file (the floor);
- search latency through the tracking page (Django's test client, a viewer logged in): median and
  p95 for a sender, a recipient domain, a Message-ID and a one-hour time range;
- peak memory of this process.

Targets from the issue: ingest >= 1/3 of grep's rate, every search p95 <= 100 ms, peak <= 500 MB.
BENCH_TRACKING_LINES sets the size (default 10,000,000). Run with `make bench`.
"""

import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINES = int(os.environ.get("BENCH_TRACKING_LINES", "10000000"))
SEARCH_RUNS = int(os.environ.get("BENCH_SEARCH_RUNS", "40"))
TAG = "sm-mta"
OTHER_TAG = "sm-msp-queue"
BASE60 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx"
DOMAINS = [f"dom{n}.example" for n in range(2000)]


class LogWriter:
    """A relay's mail log, message by message, with the clock moving on."""

    def __init__(self, path: Path, rnd: random.Random, start: datetime):
        self.handle = open(path, "w", buffering=1 << 20)  # noqa: SIM115 (closed by close())
        self.rnd, self.clock, self.lines, self.serial = rnd, start, 0, 0
        self.senders = [f"user{n}@{rnd.choice(DOMAINS)}" for n in range(20000)]

    def close(self) -> None:
        self.handle.close()

    def stamp(self) -> str:
        self.clock += timedelta(microseconds=self.rnd.randrange(1000, 60000))
        return self.clock.strftime("%b %e %H:%M:%S")

    def write(self, tag: str, pid: int, text: str) -> None:
        self.handle.write(f"{self.stamp()} relay1 {tag}[{pid}]: {text}\n")
        self.lines += 1

    def queue_id(self) -> str:
        """A queue id as sendmail makes them: the time in base 60, a sequence, a number."""
        self.serial += 1
        c, n = self.clock, self.serial
        stamp = "".join(BASE60[v] for v in (c.year % 60, c.month - 1, c.day, c.hour, c.minute, c.second))
        return f"{stamp}{BASE60[n % 60]}{BASE60[(n // 60) % 60]}{n % 1000000:06d}"

    def message(self) -> None:
        rnd = self.rnd
        pid = rnd.randrange(1000, 99999)
        qid = self.queue_id()
        sender = rnd.choice(self.senders)
        recipients = [f"r{rnd.randrange(100000)}@{rnd.choice(DOMAINS)}" for _ in range(rnd.choice((1, 1, 1, 2, 3, 5)))]
        client = f"127.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
        fate = rnd.random()
        if fate < 0.03:
            self.write(TAG, pid, f"NOQUEUE: ruleset=check_rcpt, arg1=<{recipients[0]}>, relay=c [{client}], "
                                 f"reject=550 5.7.1 <{recipients[0]}>... Relaying denied")  # fmt: skip
            return
        self.write(TAG, pid, f"STARTTLS=server, relay=c [{client}], version=TLSv1.3, verify=NO, "
                             "cipher=TLS_AES_256_GCM_SHA384, bits=256/256")  # fmt: skip
        size = rnd.randrange(500, 200000)
        self.write(TAG, pid, f"{qid}: from=<{sender}>, size={size}, class=0, nrcpts={len(recipients)}, "
                             f"msgid=<{qid}.{self.serial}@{sender.partition('@')[2]}>, proto=ESMTPS, daemon=MTA, "
                             f"relay=c [{client}]")  # fmt: skip
        to = ",".join(f"<{r}>" for r in recipients)
        if fate < 0.05:
            self.write(TAG, pid, f"{qid}: quarantine=held by policy {rnd.randrange(10)}")
            return
        deferrals = rnd.choice((0,) * 16 + (1, 2, 3, 4)) if fate < 0.95 else rnd.randrange(1, 4)
        pid = rnd.randrange(1000, 99999)
        for attempt in range(deferrals):
            self.write(TAG, pid, f"{qid}: to={to}, delay=00:{attempt * 10:02d}:00, xdelay=00:00:05, mailer=esmtp, "
                                 f"pri={120000 * (attempt + 1)}, relay=mx.{recipients[0].partition('@')[2]}., "
                                 "dsn=4.4.1, stat=Deferred: Connection timed out with mx")  # fmt: skip
        if fate < 0.95:
            self.write(TAG, pid, f"STARTTLS=client, relay=mx.{recipients[0].partition('@')[2]}., version=TLSv1.3, "
                                 "verify=OK, cipher=TLS_AES_256_GCM_SHA384, bits=256/256")  # fmt: skip
            self.write(TAG, pid, f"{qid}: to={to}, delay=00:00:02, xdelay=00:00:01, mailer=esmtp, pri=30000, "
                                 f"relay=mx.{recipients[0].partition('@')[2]}. [127.0.0.9], dsn=2.0.0, "
                                 "stat=Sent (Ok: queued as 4Xyz)")  # fmt: skip
            return
        bounce = self.queue_id()
        self.write(TAG, pid, f"{qid}: to={to}, delay=00:00:03, xdelay=00:00:01, mailer=esmtp, pri=30000, "
                             f"relay=mx.{recipients[0].partition('@')[2]}. [127.0.0.9], dsn=5.1.1, "
                             "stat=User unknown")  # fmt: skip
        self.write(TAG, pid, f"{qid}: {bounce}: DSN: User unknown")
        self.write(TAG, pid, f"{bounce}: from=<>, size={size + 2000}, class=0, nrcpts=1, "
                             f"msgid=<{bounce}@relay1.example>, proto=local, daemon=MTA, relay=localhost")  # fmt: skip
        self.write(TAG, pid, f"{bounce}: to=<{sender}>, delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=30000, "
                             f"relay=mx.{sender.partition('@')[2]}. [127.0.0.9], dsn=2.0.0, "
                             "stat=Sent (Ok)")  # fmt: skip

    def noise(self) -> None:
        rnd = self.rnd
        if rnd.random() < 0.6:
            self.write(OTHER_TAG, rnd.randrange(1000, 99999), f"{self.queue_id()}: to=root, ctladdr=root (0/0), "
                       "delay=00:00:00, xdelay=00:00:00, mailer=relay, pri=30000, relay=[127.0.0.1], dsn=2.0.0, "
                       "stat=Sent (local)")  # fmt: skip
        else:
            self.write(TAG, rnd.randrange(1000, 99999), f"{self.queue_id()}: c [127.0.0.{rnd.randrange(1, 255)}] "
                       "did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA")  # fmt: skip


def write_log(path: Path, lines: int, rnd: random.Random, start: datetime) -> LogWriter:
    writer = LogWriter(path, rnd, start)
    while writer.lines < lines:
        if rnd.random() < 0.08:
            writer.noise()
        else:
            writer.message()
    writer.close()
    return writer


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-tracking-", dir=ROOT / "var"))
    os.environ["MAILADMIN_VAR_DIR"] = str(workdir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "mailadmin.settings"
    os.environ["MAILADMIN_STATIC_STORAGE"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
    sys.path.insert(0, str(ROOT))
    try:
        run(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(workdir: Path) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from mailadmin.models import MailServer
    from mailadmin.mta import agent, instance
    from tracking import agentside
    from tracking.models import MessageTrace, TraceRecipient

    setup_test_environment()  # the test client then hands back each page's context (its rows)
    settings.ALLOWED_HOSTS = ["testserver"]
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    root = Path(settings.MAILADMIN_INSTANCES_DIR) / "tbench"
    log = workdir / "log" / "mail.log"
    log.parent.mkdir(parents=True)
    embedded = instance.embedded_instance("tbench", root, 2597, log_file=str(log))
    embedded = embedded.__class__(**{**embedded.__dict__, "syslog_tag": TAG})
    agent.serve(instance.write_agent_config(workdir / "tbench-agent.toml", "tbench", [embedded]))
    server = MailServer.objects.create(name="tbench", celery_queue="mta.tbench", **embedded.server_fields())

    rnd = random.Random(13)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    started = time.perf_counter()
    end = write_log(log, LINES, rnd, start).clock
    writing = time.perf_counter() - started
    span_minutes = max(int((end - start).total_seconds() // 60) - 60, 1)
    size_mb = log.stat().st_size / 1e6
    print(f"log: {LINES:,} lines, {size_mb:,.0f} MB over {end - start}, written in {writing:.1f} s")

    count = ["grep", "-cF", f" {TAG}[", str(log)]
    grep = min(timed(lambda: subprocess.run(count, check=True, capture_output=True)) for _ in range(2))
    ingest_seconds = timed(lambda: agentside.ingest(server))
    grep_rate, ingest_rate = LINES / grep, LINES / ingest_seconds
    traces = MessageTrace.objects.count()
    print(f"grep -c: {grep:.2f} s ({grep_rate:,.0f} lines/s)   ingest: {ingest_seconds:.1f} s "
          f"({ingest_rate:,.0f} lines/s, {ingest_rate / grep_rate:.3f}x grep; target >= 0.333x)   "
          f"{traces:,} traces")  # fmt: skip

    # The floor of any design that keeps each line in the database: the database copying the event
    # rows it already has into a table with the same indexes, with no Python and no parsing at all.
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_floor AS SELECT * FROM tracking_traceevent WHERE 1 = 0")
        cursor.execute("CREATE INDEX bench_floor_server_at ON bench_floor (server_id, at)")
        cursor.execute("CREATE INDEX bench_floor_at ON bench_floor (at)")
        cursor.execute("CREATE INDEX bench_floor_trace ON bench_floor (trace_id)")
        started = time.perf_counter()
        cursor.execute("INSERT INTO bench_floor SELECT * FROM tracking_traceevent")
        copied = cursor.rowcount
    floor = time.perf_counter() - started
    print(f"database floor: copying the {copied:,} stored lines inside the database took {floor:.1f} s "
          f"({copied / floor:,.0f} lines/s, {copied / floor / grep_rate:.3f}x grep)")  # fmt: skip

    viewer = User.objects.create_user("bench", password="correct horse battery")
    viewer.groups.add(Group.objects.get_or_create(name="viewer")[0])
    client = Client()
    client.force_login(viewer)
    picks = list(MessageTrace.objects.exclude(message_id="").values_list("sender", "message_id")[: 10 * SEARCH_RUNS])
    domains = list(TraceRecipient.objects.values_list("domain", flat=True)[: 10 * SEARCH_RUNS])
    searches = {
        "sender": lambda: {"sender": rnd.choice(picks)[0]},
        "recipient domain": lambda: {"recipient": "@" + rnd.choice(domains)},
        "message-id": lambda: {"q": rnd.choice(picks)[1]},
        "one hour": lambda: (
            lambda at: {
                "since": at.strftime("%Y-%m-%dT%H:%M"),
                "until": (at + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            }
        )(start + timedelta(minutes=rnd.randrange(0, span_minutes))),  # fmt: skip
    }
    print(f"\n{'search':>17} {'median ms':>10} {'p95 ms':>8} {'rows':>6}")
    for name, params in searches.items():
        samples, rows = [], 0
        for _ in range(SEARCH_RUNS):
            query = params()
            started = time.perf_counter()
            page = client.get("/tracking/", query)
            samples.append(time.perf_counter() - started)
            assert page.status_code == 200, page.status_code
            rows = len(page.context["rows"])
        median, p95 = percentiles(samples)
        print(f"{name:>17} {median:>10.1f} {p95:>8.1f} {rows:>6}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory: {peak:,.0f} MB (target <= 500 MB)")


if __name__ == "__main__":
    main()
