"""Work rows on the real worker and the real Redis, including the faults that must lose nothing.

The fault tests (RELIABILITY.md §4, F1–F5 for a service action) make a daemon restart hang in
a controlled place: the sendmail daemon is stopped with SIGSTOP, so the task's SIGTERM stays
pending and the task waits for the process to exit. At a random moment after the claim the
test kills the worker or Redis; then it lets the daemon go on. Each fault test runs
MAILADMIN_FAULT_REPEAT times (5 in `make test`, 20 nightly); the offset is in every failure message.
"""

import os
import random
import shutil
import signal
import time

import pytest
import redis

from mailadmin import work
from mailadmin.models import AuditEvent, ServiceAction
from mailadmin.mta import daemon
from mailadmin.work import WorkStatus
from testing.processes import wait_for
from testing.work import reload_row, wait_terminal

FAULT_REPEAT = int(os.environ.get("MAILADMIN_FAULT_REPEAT", "5"))
repeated = pytest.mark.parametrize("repetition", range(FAULT_REPEAT))
# The restart reaches its wait for the frozen daemon a few ms after the claim and stays there
# until the test lets the daemon go: a fault drawn from this window lands before or during it.
FAULT_WINDOW = 1.0


def restart_with_daemon_frozen(server) -> tuple[ServiceAction, int]:
    """A restart claimed by the worker, which can not get past stopping the frozen daemon."""
    pid = daemon.live_pid(server)
    os.kill(pid, signal.SIGSTOP)
    row = ServiceAction.objects.create(server=server, verb=ServiceAction.Verb.RESTART)
    assert work.publish(row)
    wait_for(lambda: reload_row(row).status == WorkStatus.RUNNING, 30, "the worker to claim the restart")
    return row, pid


def after_a_random_offset(rnd: random.Random) -> str:
    offset = rnd.uniform(0, FAULT_WINDOW)
    time.sleep(offset)
    return f"fault {offset:.3f} s after the claim was seen"


def thaw(pid: int) -> None:
    """Let the daemon go on: it exits if the restart's SIGTERM reached it, or runs on until the rerun's does."""
    os.kill(pid, signal.SIGCONT)


def restart_events(server):
    return AuditEvent.objects.filter(server=server, action="daemon restart")


def assert_restarted_once(row, frozen_pid: int, worker, context: str, attempts: tuple[int, ...] = (2,)) -> None:
    assert row.status == WorkStatus.DONE, (context, row.error, worker.log()[-3000:])
    assert row.attempt in attempts, context
    status = daemon.status(row.server)
    assert status.answering and status.pid != frozen_pid, (context, status.summary)
    assert restart_events(row.server).filter(outcome=AuditEvent.Outcome.OK).count() == 1, context


def test_a_service_action_runs_on_the_real_worker(worker, mta_server):
    old_pid = daemon.live_pid(mta_server)
    row = ServiceAction.objects.create(server=mta_server, verb=ServiceAction.Verb.RESTART)
    assert work.publish(row)
    wait_terminal(row)
    assert row.status == WorkStatus.DONE, (row.error, worker.log()[-3000:])
    assert row.attempt == 1 and row.progress == 100
    status = daemon.status(mta_server)
    assert status.answering and status.pid != old_pid
    assert f"started (pid {status.pid})" in row.output
    assert restart_events(mta_server).get().outcome == AuditEvent.Outcome.OK


def test_a_duplicate_delivery_is_a_no_op(worker, mta_server):
    row = ServiceAction.objects.create(server=mta_server, verb=ServiceAction.Verb.START)
    assert work.publish(row) and work.publish(row)
    wait_terminal(row)
    time.sleep(1)
    assert reload_row(row).attempt == 1
    assert "already running" in row.output


@pytest.mark.faults
@repeated
def test_killing_the_pool_child_mid_task_loses_nothing(repetition, fault_random, worker, mta_server):
    """F1: SIGKILL of the pool child (the row's worker_pid); the redelivered message or the sweeper reruns it."""
    row, frozen_pid = restart_with_daemon_frozen(mta_server)
    context = after_a_random_offset(fault_random)
    os.kill(row.worker_pid, signal.SIGKILL)
    thaw(frozen_pid)
    wait_terminal(row, timeout=60, sweep_every=0.25)
    assert_restarted_once(row, frozen_pid, worker, context)


@pytest.mark.faults
@repeated
def test_killing_the_whole_worker_mid_task_is_finished_by_the_sweeper_after_restart(
    repetition, fault_random, worker, mta_server
):
    """F2: SIGKILL of the main process and its children; the sweeper reclaims the row when its lease ends."""
    row, frozen_pid = restart_with_daemon_frozen(mta_server)
    context = after_a_random_offset(fault_random)
    worker.kill_all()
    thaw(frozen_pid)
    assert reload_row(row).status == WorkStatus.RUNNING, context
    worker.start()
    wait_terminal(row, timeout=60, sweep_every=0.25)
    assert_restarted_once(row, frozen_pid, worker, context)


@pytest.mark.faults
@repeated
def test_redis_stopping_while_a_task_runs_leaves_a_finished_row(
    repetition, fault_random, worker, redis_server, mta_server
):
    """F3: Redis stops (SIGTERM, AOF on) while the task runs, and comes back; the row still ends done."""
    row, frozen_pid = restart_with_daemon_frozen(mta_server)
    context = after_a_random_offset(fault_random)
    redis_server.stop()
    thaw(frozen_pid)
    downtime = fault_random.uniform(0.2, 1.0)
    context += f", Redis down for {downtime:.3f} s"
    time.sleep(downtime)
    redis_server.start()
    wait_terminal(row, timeout=90, sweep_every=0.25)
    assert_restarted_once(row, frozen_pid, worker, context, attempts=(1, 2))


@pytest.mark.faults
@repeated
def test_a_change_submitted_while_redis_is_down_runs_when_it_is_back(
    repetition, worker, redis_server, mta_server, administrator, client
):
    """F4: the POST answers with the row queued and undispatched; the sweeper dispatches it when Redis is back."""
    redis_server.stop()
    client.force_login(administrator)
    response = client.post(f"/servers/{mta_server.name}/service/", {"verb": "restart"})
    assert response.status_code == 302
    row = ServiceAction.objects.get()
    assert row.status == WorkStatus.QUEUED and row.dispatched_at is None
    page = client.get(response["Location"])
    assert b"will run when a worker is available" in page.content

    redis_server.start()
    wait_terminal(row, timeout=60, sweep_every=0.25)
    assert row.status == WorkStatus.DONE, (row.error, worker.log()[-3000:])
    assert row.attempt == 1
    assert daemon.status(mta_server).answering


def waiting_messages(redis_server, queue: str) -> int:
    with redis.Redis.from_url(redis_server.url) as client:
        return client.llen(queue)


@pytest.mark.faults
@repeated
def test_rows_queued_when_redis_loses_every_message_all_run_when_it_is_back(
    repetition, fault_random, worker, redis_server, mta_server
):
    """F5: kill -9 of Redis and its persistence gone, with 10 rows queued; the rows, not Redis, are the record."""
    busy, frozen_pid = restart_with_daemon_frozen(mta_server)  # the worker's one pool child waits on it
    rows = [ServiceAction.objects.create(server=mta_server, verb=ServiceAction.Verb.START) for _ in range(10)]
    assert all(work.publish(row) for row in rows)
    assert waiting_messages(redis_server, mta_server.celery_queue) == len(rows)
    context = after_a_random_offset(fault_random)
    redis_server.stop(signal.SIGKILL)
    # What a Redis without persistence would come back with: nothing.
    shutil.rmtree(redis_server.workdir / "appendonlydir")
    thaw(frozen_pid)
    redis_server.start()
    assert waiting_messages(redis_server, mta_server.celery_queue) == 0, "Redis came back empty"

    for row in [busy, *rows]:
        wait_terminal(row, timeout=90, sweep_every=0.25)
    assert_restarted_once(busy, frozen_pid, worker, context, attempts=(1, 2))
    assert [(row.status, row.attempt) for row in rows] == [(WorkStatus.DONE, 1)] * len(rows), context
    starts = AuditEvent.objects.filter(server=mta_server, action="daemon start", argv__isnull=True)
    assert starts.filter(outcome=AuditEvent.Outcome.OK).count() == len(rows), context


@pytest.mark.django_db
def test_a_row_is_claimed_once(mta_server):
    row = ServiceAction.objects.create(server=mta_server, verb=ServiceAction.Verb.START)
    assert work.claim(ServiceAction, row.pk) is not None
    assert work.claim(ServiceAction, row.pk) is None


@pytest.mark.django_db
def test_the_sweeper_gives_up_after_the_last_attempt(mta_server, settings):
    row = ServiceAction.objects.create(
        server=mta_server,
        verb=ServiceAction.Verb.START,
        status=WorkStatus.RUNNING,
        attempt=settings.WORK_MAX_ATTEMPTS,
        lease_until="2000-01-01T00:00:00Z",
    )
    assert work.sweep()["gave_up"] == 1
    reload_row(row)
    assert row.status == WorkStatus.FAILED
    assert "gave up after" in row.error


@pytest.mark.django_db
def test_a_long_wait_renews_the_lease_of_its_own_attempt_only(mta_server, settings):
    settings.WORK_LEASE_SECONDS = 3
    row = ServiceAction.objects.create(server=mta_server, verb=ServiceAction.Verb.START)
    claimed = work.claim(ServiceAction, row.pk)
    keep = work.lease_keeper(claimed)
    first_lease = ServiceAction.objects.get(pk=row.pk).lease_until

    keep()  # within a third of the lease: no write
    assert ServiceAction.objects.get(pk=row.pk).lease_until == first_lease
    time.sleep(1.1)
    keep()
    renewed = ServiceAction.objects.get(pk=row.pk).lease_until
    assert renewed > first_lease

    ServiceAction.objects.filter(pk=row.pk).update(attempt=claimed.attempt + 1)  # the sweeper gave it to another
    time.sleep(1.1)
    keep()
    assert ServiceAction.objects.get(pk=row.pk).lease_until == renewed
