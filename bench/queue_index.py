"""The queue index against sendmail's own listing, at 10,000, 100,000 and 1,000,000 queued messages
(a relay in an outage).

A throw-away embedded instance (no daemon: submissions queue directly with -odq) gets a few
hundred real submissions, then clones of them under fresh, valid queue ids, as
../shared/lab/fill-queue.sh does (sendmail lists and runs such clones like real ones). At
each size, on the same warm spool, it prints as ratios to `sendmail -bp` (run through the
console's gateway): a full index build, an incremental refresh after 1% of the jobs changed
(quarantined by one sendmail call; the refresh reads the names the inotify watch reported, and
once more with the watch switched off, when it lists the queue directory), and the queue
page's latency (filter + sort + page, and the count of matches), median and p95; plus peak
memory. Run with `make bench`.

Targets (issues 6 and 13): the first full index at about 1.3-2x -bp (accepted: it runs once per
host, in the agent), incremental <= 0.1x -bp, page median <= 50 ms and p95 <= 150 ms, peak memory
<= 300 MB at 100k and <= 1 GB at 1M.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = [int(n) for n in os.environ.get("BENCH_QUEUE_SIZES", "10000,100000,1000000").split(",")]
REAL = int(os.environ.get("BENCH_QUEUE_REAL", "400"))
PAGE_RUNS = int(os.environ.get("BENCH_PAGE_RUNS", "40"))
BASE60 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx"


def submit_real(server, count: int) -> None:
    def one(number: int) -> None:
        recipients = [f"rcpt{number}-{j}@dom{number % 50}.remote.example" for j in range(number % 5 + 1)]
        sender = f"sender{number % 20}@lab.test"
        pad = "x" * ((number % 7) * 300)
        text = f"From: {sender}\nTo: {', '.join(recipients)}\nSubject: fill {number}\n\nbody {number}\n{pad}\n"
        subprocess.run(
            [server.sendmail_bin, "-C", server.cf_path, "-odq", "-f", sender, *recipients],
            input=text.encode(),
            check=True,
            timeout=120,
            capture_output=True,
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(count)))


def clone_to(queue_dir: Path, total: int, rnd: random.Random) -> None:
    names = os.listdir(queue_dir)
    ids = {name[2:] for name in names if len(name) == 16}
    real = sorted(name[2:] for name in names if name.startswith("qf"))
    sources = [((queue_dir / f"qf{i}").read_bytes(), (queue_dir / f"df{i}").read_bytes()) for i in real[:REAL]]
    have = sum(1 for name in names if name[:2] in ("qf", "hf"))
    made = 0
    while have + made < total:
        base = rnd.choice(real)
        new_id = base[:6] + rnd.choice(BASE60) + rnd.choice(BASE60) + f"{rnd.randrange(1000000):06d}"
        if new_id in ids:
            continue
        ids.add(new_id)
        qf, df = sources[made % len(sources)]
        for prefix, data in (("df", df), ("qf", qf)):  # data first, like sendmail
            fd = os.open(queue_dir / f"{prefix}{new_id}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.close(fd)
        made += 1


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def peak_mb() -> float:
    """This process's peak. The index's forked readers are counted apart (child_peak_mb)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_peak_mb() -> float:
    """The largest child waited for: a forked index reader (it shares the parent's pages) or sendmail."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-queue-", dir=ROOT / "var"))
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

    from mailadmin.models import AuditEvent, MailServer
    from mailadmin.mta import agent, instance
    from mailadmin.mta.gateway import Mta
    from mailqueue import index
    from mailqueue.forms import QueueFilterForm
    from mailqueue.models import QueueMessage

    settings.ALLOWED_HOSTS = ["testserver"]
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing one
    call_command("migrate", verbosity=0)
    # This process is the bench instance's agent, as a host's agent worker would be.
    root = Path(settings.MAILADMIN_INSTANCES_DIR) / "qbench"
    embedded = instance.embedded_instance("qbench", root, 2598, log_file=str(root / "syslog"))
    agent.serve(instance.write_agent_config(Path(settings.VAR_DIR) / "qbench-agent.toml", "qbench", [embedded]))
    server = MailServer.objects.create(name="qbench", celery_queue="mta.qbench", **embedded.server_fields())
    mta = Mta(server)
    instance.prepare(server, mta)
    queue_dir = Path(server.queue_dir)

    started = time.perf_counter()
    submit_real(server, REAL)
    print(f"{REAL} real submissions in {time.perf_counter() - started:.1f} s (4 parallel, sendmail -odq)")

    viewer = User.objects.create_user("bench", password="correct horse battery")
    viewer.groups.add(Group.objects.get_or_create(name="viewer")[0])
    client = Client()
    client.force_login(viewer)
    url = f"/servers/{server.name}/queue/"
    rnd = random.Random(6)

    print(
        f"\n{'messages':>9} {'-bp s':>7} {'full index s':>13} {'ratio':>6} {'1% refresh s':>13} {'ratio':>6}"
        f" {'listing s':>10} {'ratio':>6}"
        f" {'page med ms':>12} {'p95 ms':>7} {'count med ms':>13} {'p95 ms':>7} {'peak MB':>8} {'child MB':>9}"
    )
    for size in SIZES:
        started = time.perf_counter()
        clone_to(queue_dir, size, rnd)
        cloning = time.perf_counter() - started

        mta.sendmail("-bp", action="bench list")  # warm the page cache the same way for both
        # The program's own run time, as the gateway measured it (not the audit row written after it).
        bp = statistics.median(mta.sendmail("-bp", action="bench list").seconds for _ in range(3))

        QueueMessage.objects.filter(server=server).delete()
        full = timed(lambda: index.refresh(server))
        assert QueueMessage.objects.filter(server=server).count() == size, "index and spool disagree"

        normal = QueueMessage.objects.filter(state__in=["queued", "failing"]).values_list("queue_id", flat=True)
        changed = rnd.sample(sorted(normal), size // 100)
        quarantine = mta.sendmail(
            "-Qbench change", *[f"-qI{queue_id}" for queue_id in changed], action="bench quarantine"
        ).seconds
        incremental_result = None

        def incremental():
            nonlocal incremental_result
            incremental_result = index.refresh(server)

        incremental_seconds = timed(incremental)
        assert incremental_result.files_read == len(changed), incremental_result
        assert not incremental_result.listed, "the refresh after a listing reads what the watch reported"

        # The same again without the watch (MAILADMIN_QUEUE_INDEX_WATCH=0, or one that lost track).
        mta.sendmail("-Q", "-qQ", *[f"-qI{queue_id}" for queue_id in changed], action="bench release")
        settings.QUEUE_INDEX_WATCH = False
        listing_seconds = timed(incremental)
        settings.QUEUE_INDEX_WATCH = True
        assert incremental_result.files_read == len(changed) and incremental_result.listed, incremental_result
        index.refresh(server)  # arm the watch again for the next size

        queries = [
            {"recipient": "dom7.", "sort": "-size"},
            {"state": "quarantined", "reason": "bench"},
            {"sender": "sender3@", "sort": "created", "page": "5"},
            {"sort": "-attempts", "page": "40"},
            {"domain": "dom12.remote.example", "age": "1h"},
        ]
        pages, counts = [], []
        for number in range(PAGE_RUNS):
            query = queries[number % len(queries)]
            started = time.perf_counter()
            response = client.get(url, query)
            pages.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
            filters = {k: v for k, v in query.items() if k not in ("sort", "page")}
            form = QueueFilterForm(filters)
            started = time.perf_counter()
            form.filter(QueueMessage.objects.filter(server=server)).count()
            counts.append((time.perf_counter() - started) * 1000)
        print(
            f"{size:>9} {bp:>7.2f} {full:>13.2f} {full / bp:>5.2f}x {incremental_seconds:>13.3f}"
            f" {incremental_seconds / bp:>5.3f}x {listing_seconds:>10.3f} {listing_seconds / bp:>5.3f}x"
            f" {statistics.median(pages):>12.1f} {percentile(pages, 0.95):>7.1f}"
            f" {statistics.median(counts):>13.1f} {percentile(counts, 0.95):>7.1f}"
            f" {peak_mb():>8.0f} {child_peak_mb():>9.0f}"
        )
        print(
            f"{'':>9} (cloned in {cloning:.1f} s; 1% = {len(changed)} jobs quarantined by one sendmail call"
            f" in {quarantine:.2f} s; the refresh reads what the inotify watch reported, 'listing' is the"
            " same after their release with MAILADMIN_QUEUE_INDEX_WATCH=0)"
        )
        AuditEvent.objects.all().delete()


if __name__ == "__main__":
    main()
