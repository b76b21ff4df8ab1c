"""Queue actions: sendmail's own verbs through the gateway, outcomes read back from the spool.

sendmail exits 0 whether or not a selector matched and when it skips a job another process
has locked, and `-qI` matches substrings; so every action notes the spool before, runs one
call per chunk of ids, then looks at each job's files again and records what it saw. A
rerun of the same action finds the spool already in the target state and changes nothing
(a worker killed after sendmail ran but before the row was updated costs no second effect).

Deletion is the one action sendmail has no verb for: it takes sendmail's own lock on the
control file (flock, like sendmail; fcntl/lockf locks would not see sendmail's), removes the
data file, then the control file, and reports a job someone else holds as busy.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from mailadmin.mta.files import fsync_directory
from mailadmin.mta.gateway import CommandResult, Mta
from mailadmin.mta.spool import queue_directories
from mailqueue import forms, index, spool
from mailqueue.models import QueueAction

IDS_PER_CALL = 1000
DEBUG_LOG_LIMIT = 256 * 1024
OUTPUT_LIMIT = 64 * 1024
QUEUE_RUN_TIMEOUT = 600

Progress = Callable[[int, str], None]


class ActionRefused(ValueError):
    """The action's inputs are not acceptable; nothing was run."""


def chunks(items: list[str], size: int = IDS_PER_CALL) -> list[list[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def live_ids(server) -> set[str]:
    return spool.job_ids(server.queue_dir)


def colliding_ids(wanted: list[str], live: set[str]) -> set[str]:
    """Ids that are part of another live id: `-qI<id>` would select that other job too."""
    if not wanted:
        return set()
    # Queue ids have one length in practice, so there is usually nothing longer to look through.
    shortest = min(len(w) for w in wanted)
    longer = [other for other in live if len(other) > shortest]
    return {w for w in wanted if any(len(other) > len(w) and w in other for other in longer)}


def reason_of(control: spool.ControlFile) -> str | None:
    parsed = spool.read_control(control.path, control.kind, control.queue_id)
    return parsed.quarantine_reason if parsed else None


class DebugCapture:
    """sendmail's `-D file` output, kept to its first DEBUG_LOG_LIMIT bytes without ever landing on disk.

    `-d` on a big queue writes without bound (hundreds of MB at -d0-99.1), so the file sendmail
    appends to is a FIFO: a thread keeps the first 256 KiB and reads the rest away, so sendmail is
    never slowed or stopped and the disk never fills. A write end of our own keeps the FIFO open
    between the action's sendmail calls (each opens it anew) and is closed when they are done.
    """

    FINISH_SECONDS = 10.0

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        os.mkfifo(path, 0o600)
        self.reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        self.keeper = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        os.set_blocking(self.reader, True)
        self.kept = bytearray()
        self.total = 0
        self.thread = threading.Thread(target=self._drain, name=f"debug {path.name}", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        try:
            while chunk := os.read(self.reader, 65536):
                self.total += len(chunk)
                room = DEBUG_LOG_LIMIT - len(self.kept)
                if room > 0:
                    self.kept += chunk[:room]
        finally:
            os.close(self.reader)

    def finish(self) -> str:
        """Close our end, wait for sendmail's to close, and return what was kept."""
        if self.keeper is not None:
            os.close(self.keeper)
            self.keeper = None
            self.path.unlink(missing_ok=True)
            # A child sendmail forked may still hold the FIFO: then we answer with what we have,
            # and the thread goes on reading it away until that child closes it.
            self.thread.join(self.FINISH_SECONDS)
        text = bytes(self.kept).decode("utf-8", "replace")
        if self.total > DEBUG_LOG_LIMIT:
            text += f"\n[… cut at {DEBUG_LOG_LIMIT // 1024} KiB of {self.total:,} bytes]"
        return text


class Runner:
    """Runs one QueueAction's sendmail calls and collects commands, output and the debug log."""

    def __init__(self, action: QueueAction, mta: Mta, progress: Progress):
        self.action, self.mta, self.progress = action, mta, progress
        # The server as the gateway bound it to this host's agent configuration: every spool
        # path below comes from there, never from the database row.
        self.server = mta.server
        self.commands: list[list[str]] = []
        self.output: list[str] = []
        self.debug: DebugCapture | None = None
        if action.debug_level:
            forms.clean_debug_level(action.debug_level)
            self.debug = DebugCapture(Path(settings.VAR_DIR) / "queue-debug" / f"action-{action.pk}.fifo")

    def debug_flags(self) -> list[str]:
        # -D must come before -d, or sendmail exits 64 ("-D file must be before -d").
        if self.debug is None:
            return []
        return ["-D", str(self.debug.path), f"-d{self.action.debug_level}"]

    def sendmail(self, *args: str, timeout: float | None = None) -> CommandResult:
        result = self.mta.sendmail(*self.debug_flags(), *args, action=f"queue {self.action.verb}", timeout=timeout)
        self.commands.append(list(result.argv))
        text = (result.stdout_text + result.stderr_text).strip()
        if text:
            self.output.append(text)
        return result

    def debug_log(self) -> str:
        return self.debug.finish() if self.debug is not None else ""

    def joined_output(self) -> str:
        return "\n".join(self.output)[:OUTPUT_LIMIT]


def _controls(server, ids: list[str]) -> dict[str, spool.ControlFile | None]:
    return {queue_id: spool.find_control(server.queue_dir, queue_id) for queue_id in ids}


def _refuse_collisions(server, ids: list[str], outcomes: dict[str, str]) -> list[str]:
    clash = colliding_ids(ids, live_ids(server))
    for queue_id in clash:
        outcomes[queue_id] = "refused: this id is part of another queued id, so -qI would select both"
    return [queue_id for queue_id in ids if queue_id not in clash]


def quarantine(runner: Runner, ids: list[str], reason: str) -> dict[str, str]:
    server = runner.server
    forms.validate_reason(reason)
    outcomes: dict[str, str] = {}
    ids = _refuse_collisions(server, ids, outcomes)
    fresh, requarantine = [], []
    for queue_id, control in _controls(server, ids).items():
        if control is None:
            outcomes[queue_id] = "gone: no longer in the queue"
        elif control.kind == "Qf":
            outcomes[queue_id] = "refused: a lost control file (Qf) is not touched"
        elif control.kind == "hf" and reason_of(control) == reason:
            outcomes[queue_id] = "quarantined (already, same reason)"
        elif control.kind == "hf":
            requarantine.append(queue_id)
        else:
            fresh.append(queue_id)
    # An already quarantined job is only selected with -qQ; a normal one only without it.
    batches = [(batch, []) for batch in chunks(fresh)] + [(batch, ["-qQ"]) for batch in chunks(requarantine)]
    for number, (batch, extra) in enumerate(batches, start=1):
        runner.sendmail(f"-Q{reason}", *extra, *[f"-qI{queue_id}" for queue_id in batch])
        runner.progress(int(80 * number / len(batches)), f"quarantined batch {number} of {len(batches)}")
    for queue_id in fresh + requarantine:
        control = spool.find_control(server.queue_dir, queue_id)
        if control is None:
            outcomes[queue_id] = "gone: no longer in the queue"
        elif control.kind == "hf" and reason_of(control) == reason:
            outcomes[queue_id] = "quarantined"
        else:
            outcomes[queue_id] = "busy: sendmail skipped it (a queue run holds it); run the action again"
    return outcomes


def release(runner: Runner, ids: list[str]) -> dict[str, str]:
    server = runner.server
    outcomes: dict[str, str] = {}
    ids = _refuse_collisions(server, ids, outcomes)
    held = []
    for queue_id, control in _controls(server, ids).items():
        if control is None:
            outcomes[queue_id] = "gone: no longer in the queue"
        elif control.kind == "qf":
            outcomes[queue_id] = "released (already)"
        elif control.kind == "Qf":
            outcomes[queue_id] = "refused: a lost control file (Qf) is not touched"
        else:
            held.append(queue_id)
    batches = chunks(held)
    for number, batch in enumerate(batches, start=1):
        # Without -qQ only normal jobs are selected and `-Q` silently does nothing.
        runner.sendmail("-Q", "-qQ", *[f"-qI{queue_id}" for queue_id in batch])
        runner.progress(int(80 * number / len(batches)), f"released batch {number} of {len(batches)}")
    for queue_id in held:
        control = spool.find_control(server.queue_dir, queue_id)
        if control is None:
            outcomes[queue_id] = "gone: no longer in the queue"
        elif control.kind == "qf":
            outcomes[queue_id] = "released"
        else:
            outcomes[queue_id] = "busy: sendmail skipped it (a queue run holds it); run the action again"
    return outcomes


def _attempt_outcome(before: spool.ControlFile, after: spool.ControlFile | None) -> str:
    if after is None:
        return "delivered: no longer in the queue (delivered, bounced or expired)"
    if (after.kind, after.inode, after.mtime_ns) == (before.kind, before.inode, before.mtime_ns):
        return "busy: not attempted (locked by another queue run, or too young for MinQueueAge)"
    parsed = spool.read_control(after.path, after.kind, after.queue_id)
    message = parsed.status_message if parsed else ""
    return f"attempted: {message}" if message else "attempted"


def deliver(runner: Runner, ids: list[str]) -> dict[str, str]:
    server = runner.server
    outcomes: dict[str, str] = {}
    ids = _refuse_collisions(server, ids, outcomes)
    before: dict[str, spool.ControlFile] = {}
    for queue_id, control in _controls(server, ids).items():
        if control is None:
            outcomes[queue_id] = "gone: no longer in the queue"
        elif control.kind != "qf":
            outcomes[queue_id] = "refused: quarantined or lost; release it first (or process by reason)"
        else:
            before[queue_id] = control
    batches = chunks(list(before))
    for number, batch in enumerate(batches, start=1):
        runner.sendmail(*[f"-qI{queue_id}" for queue_id in batch], "-v", timeout=QUEUE_RUN_TIMEOUT)
        runner.progress(int(80 * number / len(batches)), f"queue run {number} of {len(batches)}")
    for queue_id, control in before.items():
        outcomes[queue_id] = _attempt_outcome(control, spool.find_control(server.queue_dir, queue_id))
    return outcomes


def quarantined_jobs(server) -> dict[str, tuple[spool.ControlFile, str]]:
    files, _ = spool.scan(server.queue_dir)
    jobs = {}
    for found in files:
        if found.kind == "hf":
            reason = reason_of(found)
            if reason is not None:
                jobs[found.queue_id] = (found, reason)
    return jobs


def process_quarantined(runner: Runner, substring: str, negate: bool) -> dict[str, str]:
    """A queue run over quarantined jobs whose reason contains (or, negated, lacks) the text."""
    server = runner.server
    forms.validate_selector(substring, "Q")
    before = quarantined_jobs(server)
    flag = f"-q!Q{substring}" if negate else f"-qQ{substring}"
    runner.sendmail(flag, "-v", timeout=QUEUE_RUN_TIMEOUT)
    outcomes = {}
    for queue_id, (control, reason) in before.items():
        after = spool.find_control(server.queue_dir, queue_id)
        touched = after is None or (after.inode, after.mtime_ns) != (control.inode, control.mtime_ns)
        expected = (substring in reason) != negate
        if touched or expected:
            outcomes[queue_id] = _attempt_outcome(control, after)
    return outcomes


def quarantine_matching(runner: Runner, kind: str, selector: str, reason: str) -> dict[str, str]:
    """`-Q<reason> -q<kind><selector>`: sendmail picks the jobs; the spool says which it took."""
    server = runner.server
    forms.validate_selector(selector, kind)
    forms.validate_reason(reason)
    normal = spool.job_ids(server.queue_dir, kinds=("qf",))
    runner.sendmail(f"-Q{reason}", f"-q{kind}{selector}")
    outcomes = {}
    for queue_id in sorted(normal):
        control = spool.find_control(server.queue_dir, queue_id)
        if control is not None and control.kind == "hf" and reason_of(control) == reason:
            outcomes[queue_id] = "quarantined"
    return outcomes


def _lock_exclusive(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _data_file_inside(server, control: spool.ControlFile, parsed) -> tuple[str | None, str]:
    """The job's data file to remove, never outside the queue directories, and the outcome to report.

    A `d` line naming anything but one of the queue directories makes sendmail refuse the job
    ("Bogus data file directory"); deleting it removes what is in the job's own directory only.
    """
    try:
        return spool.data_file_path(server.queue_dir, control.queue_dir, control.queue_id, parsed), "deleted"
    except spool.OutsideQueue as exc:
        outcome = f"deleted: only files inside the queue directories were removed ({exc})"
    try:
        return spool.data_file_path(server.queue_dir, control.queue_dir, control.queue_id), outcome
    except spool.OutsideQueue:
        return None, outcome


def delete_job(server, queue_id: str) -> str:
    """Delete one job under sendmail's lock: data file first, control file last, or nothing at all."""
    control = spool.find_control(server.queue_dir, queue_id)
    if control is None:
        return "deleted (already gone)"
    if control.kind == "Qf":
        return "refused: a lost control file (Qf) is not touched"
    if not spool.inside_queue(server.queue_dir, control.path):
        return "refused: its control file resolves outside the queue directories"
    try:
        fd = os.open(control.path, os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:
        return "busy: the control file was renamed while we looked; run the action again"
    try:
        if not _lock_exclusive(fd):
            return "busy: locked by sendmail (a queue run is working on it); run the action again"
        # Like sendmail's readqf: after the lock, make sure the name still points at this file.
        held = os.fstat(fd)
        try:
            current = os.lstat(control.path)
        except FileNotFoundError:
            return "busy: the control file was renamed while we locked it; run the action again"
        if held.st_nlink == 0 or current.st_ino != held.st_ino:
            return "busy: the control file was replaced while we locked it; run the action again"
        parsed = spool.read_control(control.path, control.kind, queue_id)
        data_path, outcome = _data_file_inside(server, control, parsed)
        transcript = os.path.join(spool.transcript_dir(control.queue_dir), f"xf{queue_id}")
        removed = [path for path in (data_path, transcript) if path and spool.inside_queue(server.queue_dir, path)]
        for path in removed:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        os.unlink(control.path)
        for directory in {os.path.dirname(path) for path in [*removed, control.path]}:
            fsync_directory(directory)
    finally:
        os.close(fd)
    return outcome


def delete(runner: Runner, ids: list[str]) -> dict[str, str]:
    server = runner.server
    outcomes = {}
    for number, queue_id in enumerate(ids, start=1):
        outcomes[queue_id] = delete_job(server, queue_id)
        if number % 200 == 0:
            runner.progress(int(80 * number / len(ids)), f"deleted {number} of {len(ids)}")
    return outcomes


def check_ids(server, ids: list[str]) -> list[str]:
    for queue_id in ids:
        forms.validate_queue_id(queue_id)
    if not queue_directories(server.queue_dir):
        raise ActionRefused(f"no queue directory matches {server.queue_dir}")
    return ids


def perform(action: QueueAction, mta: Mta, progress: Progress) -> None:
    """Run the action's verb, then store commands, outcomes, output and debug log on the row."""
    verb = QueueAction.Verb
    runner = Runner(action, mta, progress)
    server = runner.server
    try:
        if action.verb == verb.REFRESH:
            result = index.refresh(server)
            action.output = f"{result.files_seen} files, {result.files_read} read, {result.removed} removed"
            return
        if action.verb in (verb.QUARANTINE, verb.RELEASE, verb.DELIVER, verb.DELETE):
            ids = check_ids(server, list(action.queue_ids))
            handlers = {
                verb.QUARANTINE: lambda: quarantine(runner, ids, action.reason),
                verb.RELEASE: lambda: release(runner, ids),
                verb.DELIVER: lambda: deliver(runner, ids),
                verb.DELETE: lambda: delete(runner, ids),
            }
            action.outcomes = handlers[action.verb]()
        elif action.verb == verb.QUARANTINE_MATCHING:
            action.outcomes = quarantine_matching(runner, action.selector_kind, action.selector, action.reason)
        elif action.verb == verb.PROCESS_QUARANTINED:
            action.outcomes = process_quarantined(runner, action.selector, action.negate)
        else:
            raise ActionRefused(f"unknown queue action {action.verb!r}")
        progress(90, "refreshing the index")
        index.refresh(server)
    finally:
        action.commands = runner.commands
        if action.verb != verb.REFRESH:
            action.output = runner.joined_output()
        action.debug_log = runner.debug_log()
