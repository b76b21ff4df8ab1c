"""Where sendmail keeps its queue: the directories a QueueDirectory value names, and counting them.

The one home of the spool layout (agent side: it reads the MTA's spool). A QueueDirectory value
may end in `prefix*` (several queue directories), and each directory may hold qf/, df/ and xf/
subdirectories, in which case control, data and transcript files live there (op guide, "Queue
File Formats"). mailqueue reads the jobs themselves; this module only finds and counts them.
"""

from __future__ import annotations

import fnmatch
import os

from mailadmin.overview import SpoolCounts

# sendmail's file prefixes: qf queued, hf quarantined, Qf lost, df data, xf transcript.
PREFIXES = {"qf": "queued", "hf": "quarantined", "Qf": "lost", "df": "data", "xf": "transcripts"}


def queue_directories(queue_dir: str) -> list[str]:
    """The directories a QueueDirectory value names: itself, or every match of a trailing `prefix*`."""
    parent, last = os.path.split(queue_dir.rstrip("/") or "/")
    if "*" not in last:
        return [queue_dir]
    with os.scandir(parent) as entries:
        return sorted(entry.path for entry in entries if fnmatch.fnmatchcase(entry.name, last) and entry.is_dir())


def control_dir(queue_dir: str) -> str:
    """Where a queue directory's control files are: its qf/ subdirectory when there is one."""
    sub = os.path.join(queue_dir, "qf")
    return sub if os.path.isdir(sub) else queue_dir


def data_dir(queue_dir: str) -> str:
    sub = os.path.join(queue_dir, "df")
    return sub if os.path.isdir(sub) else queue_dir


def transcript_dir(queue_dir: str) -> str:
    sub = os.path.join(queue_dir, "xf")
    return sub if os.path.isdir(sub) else queue_dir


def _count_directory(counts: SpoolCounts, directory: str) -> None:
    # sendmail puts control, data and transcript files in qf/, df/ and xf/ when those subdirectories exist.
    scanned = sorted({directory, control_dir(directory), data_dir(directory), transcript_dir(directory)})
    for path in scanned:
        with os.scandir(path) as entries:
            for entry in entries:
                attribute = PREFIXES.get(entry.name[:2])
                if attribute and entry.is_file():
                    setattr(counts, attribute, getattr(counts, attribute) + 1)


def spool_counts(queue_dir: str) -> SpoolCounts:
    """Files of each kind in every queue directory; what cannot be read is said in `error`, never raised."""
    counts = SpoolCounts(queue_dir=queue_dir)
    try:
        counts.directories = queue_directories(queue_dir)
    except OSError as exc:
        counts.error = f"{exc.filename}: {exc.strerror or exc}"
        return counts
    if not counts.directories:
        counts.error = f"no directory matches {queue_dir}"
    problems = []
    for directory in counts.directories:
        try:
            _count_directory(counts, directory)
        except OSError as exc:
            problems.append(f"{exc.filename}: {exc.strerror or exc}")
    counts.error = counts.error or "; ".join(problems)
    return counts
