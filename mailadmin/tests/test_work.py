"""Work rows on the real worker and the real Redis, including the faults that must lose nothing.

The fault tests make a daemon restart hang in a controlled place: the sendmail daemon is
stopped with SIGSTOP, so the task's SIGTERM stays pending and the task waits for the process
to exit. While it waits, the test kills the worker or Redis; then it lets the daemon go on.
"""

import os
import signal
import time

import pytest
from django.test import override_settings

from conftest import TEST_LEASE_SECONDS, wait_for
from mailadmin import daemon, work
from mailadmin.models import AuditEvent, ServiceAction
from mailadmin.work import WorkStatus


def reload_row(row):
    row.refresh_from_db()
    return row


def wait_terminal(row, timeout=60.0, sweep_every: float | None = None):
    """Wait for the row to finish; optionally run the beat sweeper the way beat would."""
    last_sweep = 0.0

    def finished():
        nonlocal last_sweep
        if sweep_every is not None and time.monotonic() - last_sweep > sweep_every:
            with override_settings(WORK_REDISPATCH_SECONDS=1):
                work.sweep()
            last_sweep = time.monotonic()
        return reload_row(row).finished

    wait_for(finished, timeout, f"{row} to finish", interval=0.2)
    return row


def restart_with_daemon_frozen(server, user=None) -> tuple[ServiceAction, int]:
    pid = daemon.live_pid(server)
    os.kill(pid, signal.SIGSTOP)
    row = ServiceAction.objects.create(server=server, verb=ServiceAction.Verb.RESTART, created_by=user)
    assert work.publish(row)
    wait_for(
        lambda: reload_row(row).status == WorkStatus.RUNNING and row.progress_note.startswith("waiting"),
        30,
        "the restart to wait for the frozen daemon",
    )
    return row, pid


def thaw(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)
    daemon.wait_until_gone(pid)


def restart_events(server):
    return AuditEvent.objects.filter(server=server, action="daemon restart")


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
def test_killing_the_pool_child_mid_task_loses_nothing(worker, mta_server):
    row, frozen_pid = restart_with_daemon_frozen(mta_server)
    os.kill(row.worker_pid, signal.SIGKILL)
    thaw(frozen_pid)
    wait_terminal(row, timeout=60, sweep_every=1.0)
    assert row.status == WorkStatus.DONE, (row.error, worker.log()[-3000:])
    assert row.attempt == 2
    assert daemon.status(mta_server).answering
    assert restart_events(mta_server).filter(outcome=AuditEvent.Outcome.OK).count() == 1


@pytest.mark.faults
def test_killing_the_whole_worker_mid_task_is_finished_by_the_sweeper_after_restart(worker, mta_server):
    row, frozen_pid = restart_with_daemon_frozen(mta_server)
    worker.kill_all()
    thaw(frozen_pid)
    assert reload_row(row).status == WorkStatus.RUNNING
    worker.start()
    time.sleep(TEST_LEASE_SECONDS)
    wait_terminal(row, timeout=60, sweep_every=1.0)
    assert row.status == WorkStatus.DONE, (row.error, worker.log()[-3000:])
    assert row.attempt == 2
    assert daemon.status(mta_server).answering
    assert restart_events(mta_server).filter(outcome=AuditEvent.Outcome.OK).count() == 1


@pytest.mark.faults
def test_redis_stopping_while_a_task_runs_leaves_a_finished_row(worker, redis_server, mta_server):
    row, frozen_pid = restart_with_daemon_frozen(mta_server)
    redis_server.stop()
    thaw(frozen_pid)
    time.sleep(1)
    redis_server.start()
    wait_terminal(row, timeout=90, sweep_every=1.0)
    assert row.status == WorkStatus.DONE, (row.error, worker.log()[-3000:])
    assert row.attempt <= 2
    assert daemon.status(mta_server).answering
    assert restart_events(mta_server).filter(outcome=AuditEvent.Outcome.OK).count() == 1


@pytest.mark.faults
def test_a_change_submitted_while_redis_is_down_runs_when_it_is_back(
    worker, redis_server, mta_server, administrator, client
):
    redis_server.stop()
    client.force_login(administrator)
    response = client.post(f"/servers/{mta_server.name}/service/", {"verb": "restart"})
    assert response.status_code == 302
    row = ServiceAction.objects.get()
    assert row.status == WorkStatus.QUEUED and row.dispatched_at is None
    page = client.get(response["Location"])
    assert b"will run when a worker is available" in page.content

    redis_server.start()
    wait_terminal(row, timeout=60, sweep_every=1.0)
    assert row.status == WorkStatus.DONE, (row.error, worker.log()[-3000:])
    assert row.attempt == 1
    assert daemon.status(mta_server).answering


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
