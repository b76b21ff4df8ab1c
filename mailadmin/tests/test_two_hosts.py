"""Two MTA hosts on one machine: two sendmail instances, each served by its own agent process with
its own agent configuration, and the web tier running as the unprivileged user `mailadmin`.

This is the trust boundary end to end: the web tier cannot read either instance's files, each
agent touches only its own, and a host whose agent is down loads at once, says so, and keeps
its actions pending until the agent is back.
"""

from __future__ import annotations

import hashlib
import os
import smtplib
import time
from pathlib import Path

import pytest
from django.conf import settings

from mailadmin.models import AgentRequest, HostSnapshot, MailServer, ServiceAction
from testing.instances import agent_config_path, instance_row, start_instance, stop_instance
from testing.processes import WorkerProcess, wait_for
from testing.users import make_user
from testing.web import Browser, WebProcess, web_user_can_read, web_user_ids

pytestmark = pytest.mark.timeout(300)


def publish(task: str, server: MailServer) -> None:
    from mailadmin.celery import app

    app.send_task(task, args=[server.pk], queue=server.celery_queue)


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot_after(server: MailServer, moment: float):
    def fresh():
        row = HostSnapshot.objects.filter(server=server).first()
        return row if row and row.taken_at.timestamp() >= moment else None

    return fresh


@pytest.fixture
def two_hosts(transactional_db, redis_server, test_run_dir):
    """Instances A and B, an agent worker for each (root), and gunicorn as `mailadmin` on the test database."""
    fields, agents, saved_owner, web = [], [], {}, None
    try:
        fields = [start_instance(), start_instance()]
        servers = [instance_row(f) for f in fields]
        for server in servers:
            worker = WorkerProcess(
                redis_server.url,
                settings.DATABASES["default"]["NAME"],
                [server.celery_queue],
                test_run_dir / f"agent-{server.name}",
            )
            worker.agent_config = str(agent_config_path(server.name))
            agents.append(worker)
            worker.start()
        # The web tier's user owns the database it writes (SQLite: the file and its directory;
        # PostgreSQL: nothing on disk, the web tier logs in with MAILADMIN_DATABASE_URL).
        database = Path(settings.DATABASES["default"]["NAME"])
        if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
            uid, gid = web_user_ids()
            saved_owner = {p: (p.stat().st_uid, p.stat().st_gid) for p in [database.parent, database]}
            for path in [database.parent, *database.parent.glob(database.name + "*")]:
                os.chown(path, uid, gid)
        env = {
            "MAILADMIN_DB_PATH": str(database),
            "MAILADMIN_DB_NAME": str(database),
            "MAILADMIN_BROKER_URL": redis_server.url,
            "MAILADMIN_SECRET_KEY": settings.SECRET_KEY,
            "MAILADMIN_KEYS": ",".join(settings.MAILADMIN_KEYS),
            "MAILADMIN_REDIS_PASSWORD": settings.REDIS_PASSWORD,
        }
        web = WebProcess(env, test_run_dir / "web-as-mailadmin")
        web.start()
        # The central worker (sweeper, alerts, key generation) runs as `mailadmin` too.
        central = WorkerProcess(
            redis_server.url, settings.DATABASES["default"]["NAME"], ["mailadmin"], test_run_dir / "central"
        )
        central.user, central.env = "mailadmin", env
        agents.append(central)
        central.start()
        yield servers, agents[:2], web
    finally:
        # Whatever failed, nothing this fixture started outlives it.
        if web is not None:
            web.stop()
        for worker in agents:
            worker.stop()
        for path, (owner, group) in saved_owner.items():
            os.chown(path, owner, group)
        for f in fields:
            stop_instance(f)


def test_two_hosts_each_served_by_its_own_agent_with_the_web_tier_unprivileged(two_hosts):
    (a, b), (agent_a, agent_b), web = two_hosts

    # The web tier's user can read neither instance's files (instance directories are root's alone).
    for server in (a, b):
        for path in (server.cf_path, server.mc_path, server.access_path, server.queue_dir):
            assert not web_user_can_read(path), path

    browser = Browser(web.url)
    make_user("ada", "administrator")
    browser.log_in("ada", "correct horse battery")

    # Each agent reported its host's instances from its own configuration when it started.
    from mailadmin.models import AgentHost

    for server in (a, b):
        reported = wait_for(lambda s=server: AgentHost.objects.get(name=s.name).report, 30, "the agent's report")
        assert reported["instances"][server.name]["cf_path"] == server.cf_path
        assert reported["instances"][server.name]["sendmail_bin"] == "/usr/sbin/sendmail"

    # Both dashboards show live daemon status, from the snapshot each host's own agent took.
    started = time.time()
    for server in (a, b):
        publish("mailadmin.tasks.take_snapshot", server)
    for server in (a, b):
        snapshot = wait_for(snapshot_after(server, started), 30, f"{server.name}'s agent to take a snapshot")
        assert snapshot.daemon["banner"].startswith("220 ")
        status, page = browser.get(f"/servers/{server.name}/")
        assert status == 200
        assert f"mailadmin-{server.name}" in page, "the dashboard shows this instance's own 220 greeting"

    # A cf build and install on B runs on B's agent and does not touch A's files.
    from mailadmin import config
    from mailadmin.models import InstallJob

    a_cf_before, a_stat_before = sha256(a.cf_path), os.stat(a.cf_path)
    b_cf_before = sha256(b.cf_path)
    config.import_mc(b, Path(b.mc_path).read_text())
    config.import_access(b, Path(b.access_path).read_text())
    config.set_option(b, "MaxMessageSize", "4242424")
    build = config.start_build(b)
    wait_for(lambda: type(build).objects.get(pk=build.pk).finished, 60, "B's build")
    build.refresh_from_db()
    assert build.status == "done", build.error
    assert build.worker_pid in child_pids(agent_b)
    status, page = browser.post(f"/builds/{build.pk}/install/", {}, csrf_from=f"/builds/{build.pk}/")
    assert status == 200, page[:3000]
    assert InstallJob.objects.filter(build=build).exists(), web.log()[-3000:]
    install = wait_for_or_explain(
        agents=(agent_a, agent_b),
        web=web,
        predicate=lambda: InstallJob.objects.filter(build=build, status__in=["done", "failed"]).first(),
        timeout=60,
        what="B's install",
    )
    assert install.status == "done", install.error
    assert "O MaxMessageSize=4242424" in Path(b.cf_path).read_text()
    assert sha256(b.cf_path) != b_cf_before
    assert sha256(a.cf_path) == a_cf_before and os.stat(a.cf_path).st_mtime_ns == a_stat_before.st_mtime_ns

    # A question about A (an access-map lookup) is answered by A's agent.
    from mailadmin import requests

    asked = requests.ask(a, "map lookup", {"map": "access", "key": "Connect:127.0.0.1"})
    answered = wait_for(lambda: AgentRequest.objects.filter(pk=asked.pk, status="done").first(), 30, "A's answer")
    assert answered.worker_pid in child_pids(agent_a)

    # A quarantine on A, asked in the browser, runs on A's agent: sendmail's hf file on A's spool.
    from mailqueue.models import QueueAction, QueueMessage

    with smtplib.SMTP(a.smtp_address, a.smtp_port, timeout=10) as smtp:
        smtp.sendmail("sender@example.org", ["someone@remote.example"], "Subject: hold me\n\nbody\n")
    publish("mailqueue.tasks.refresh_index", a)
    queued = wait_for(lambda: QueueMessage.objects.filter(server=a).first(), 30, "A's index to list the mail")
    status, _ = browser.post(
        f"/servers/{a.name}/queue/act/",
        {"verb": "quarantine", "scope": "selected", "reason": "held for review", "id": queued.queue_id},
        csrf_from=f"/servers/{a.name}/queue/",
    )
    action = wait_for(lambda: QueueAction.objects.filter(server=a, status="done").first(), 60, "A's quarantine")
    assert action.worker_pid in child_pids(agent_a)
    held = Path(a.queue_dir) / f"hf{queued.queue_id}"
    assert held.exists() and "qheld for review" in held.read_text(errors="replace")
    assert not list(Path(b.queue_dir).glob("hf*"))

    # With B's agent killed, B's pages load at once and say so; B's action waits; A is unaffected.
    agent_b.kill_all()
    from django.utils import timezone

    # As if B's agent had been silent for a while: its last answer and last snapshot are old.
    silent_since = timezone.now() - timezone.timedelta(seconds=settings.AGENT_STALE_SECONDS + 60)
    type(b.host).objects.filter(pk=b.host.pk).update(last_seen=silent_since)
    HostSnapshot.objects.filter(server=b).update(taken_at=silent_since)
    began = time.monotonic()
    status, page = browser.get(f"/servers/{b.name}/")
    assert status == 200 and time.monotonic() - began < 5
    assert "has not answered since" in page
    status, _ = browser.post(f"/servers/{b.name}/service/", {"verb": "reload"}, csrf_from=f"/servers/{b.name}/")
    pending = ServiceAction.objects.filter(server=b).latest("pk")
    status, _ = browser.post(f"/servers/{a.name}/service/", {"verb": "reload"}, csrf_from=f"/servers/{a.name}/")
    on_a = ServiceAction.objects.filter(server=a).latest("pk")
    wait_for(lambda: ServiceAction.objects.get(pk=on_a.pk).finished, 60, "A's reload")
    assert ServiceAction.objects.get(pk=on_a.pk).status == "done"
    assert ServiceAction.objects.get(pk=pending.pk).status == "queued", "B's reload waits for B's agent"
    status, page = browser.get(f"/actions/service/{pending.pk}/")
    assert status == 200 and "Queued" in page

    # B's agent returns: the pending action runs there. The central worker's sweeper (unprivileged,
    # as beat would ask it every 30 s) re-sends rows nobody took.
    agent_b.start()
    from mailadmin.celery import app

    def done():
        app.send_task("mailadmin.tasks.sweep_work", queue="mailadmin")
        return ServiceAction.objects.get(pk=pending.pk).finished

    wait_for(done, 90, "B's pending reload after its agent restarted", interval=2)
    finished = ServiceAction.objects.get(pk=pending.pk)
    assert finished.status == "done", finished.error
    assert finished.worker_pid in child_pids(agent_b)


def wait_for_or_explain(*, agents, web, predicate, timeout, what):
    """wait_for, and on a timeout the work rows and the processes' logs, so a failure says why."""
    try:
        return wait_for(predicate, timeout, what)
    except AssertionError as exc:
        from mailadmin.models import InstallJob

        rows = list(InstallJob.objects.values("pk", "status", "error", "dispatched_at", "worker_pid"))
        logs = "\n".join(f"--- {w.logfile}\n{w.log()[-3000:]}" for w in agents)
        raise AssertionError(f"{exc}\nrows: {rows}\n{logs}\n--- web\n{web.log()[-2000:]}") from None


def child_pids(worker: WorkerProcess) -> set[int]:
    """The pool children of a worker (and itself): where a claimed row's worker_pid must be."""
    pids = {worker.proc.pid}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == worker.proc.pid:
                pids.add(int(entry.name))
    return pids


def test_the_attack_of_the_issue_runs_no_mail_body_and_leaks_no_console_secret(two_hosts, tmp_path):
    """Issue 11's steps: a mail body `touch <canary>`, a server row pointing sendmail at bash and the
    cf at that body, its dashboard opened: nothing runs it, and no page prints the console's keys."""
    (a, _b), (agent_a, _agent_b), web = two_hosts
    canary = tmp_path / "canary"
    with smtplib.SMTP(a.smtp_address, a.smtp_port, timeout=10) as smtp:
        smtp.sendmail("attacker@example.org", ["postmaster@example.org"], f"Subject: x\n\ntouch {canary}\n")
    data_files = wait_for(lambda: list(Path(a.queue_dir).glob("df*")), 10, "the queued mail's df file")

    browser = Browser(web.url)
    make_user("ada", "administrator")
    browser.log_in("ada", "correct horse battery")
    # Step 2 through the browser: there is no form that sets a path or a binary any more.
    status, _ = browser.post(
        "/servers/create/", {"name": "evil", "sendmail_bin": "/usr/bin/bash"}, csrf_from="/servers/"
    )
    assert status in (404, 405)
    assert not MailServer.objects.filter(name="evil").exists()

    # Step 2 by whoever can write the database: the agent still runs only its own configuration.
    MailServer.objects.filter(pk=a.pk).update(
        sendmail_bin="/usr/bin/bash", cf_path=str(data_files[0]), mc_path=str(Path(settings.CONSOLE_DIR) / "keys")
    )
    started = time.time()
    publish("mailadmin.tasks.take_snapshot", a)
    snapshot = wait_for(snapshot_after(a, started), 30, "A's agent to take a snapshot")
    status, dashboard = browser.get(f"/servers/{a.name}/")
    status, installed = browser.get(f"/servers/{a.name}/config/installed/")
    assert not canary.exists()
    assert "touch" not in snapshot.cf_text
    for secret in settings.MAILADMIN_KEYS + [settings.SECRET_KEY]:
        assert secret not in dashboard and secret not in installed and secret not in snapshot.mc.get("text", "")
    assert snapshot.cf["path"] == agent_config_cf(a)


def agent_config_cf(server: MailServer) -> str:
    from mailadmin.mta import agent

    return agent.load_file(agent_config_path(server.name)).instances[server.name].cf_path
