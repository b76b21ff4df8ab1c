"""Waiting on work rows (service actions, TLS jobs, queue actions) the real worker runs."""

from __future__ import annotations

import time

from django.test import override_settings

from mailadmin import work
from testing.processes import wait_for


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
