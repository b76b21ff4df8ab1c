"""Is a path under one of an instance's roots? (Pure: no model, no subprocess, no MTA file read.)

An instance's roots are the real directories its host's agent declares for it (conf, cert, queue,
run and log directories). Every path the console or a cf value names for that instance must lie
under one of them; the agent's own configuration (mailadmin.mta.agent) and the path-typed value
types (mailadmin.cf.m4safe) both ask this one function.
"""

from __future__ import annotations

import os


def under_any(path: str, roots: tuple[str, ...] | list[str]) -> bool:
    """Does `path` resolve (symlinks followed, `..` removed) inside one of `roots`?

    A trailing `prefix*` (sendmail's several queue directories) is checked on its directory.
    """
    if not path.startswith("/"):
        return False
    directory, last = os.path.split(path)
    real = os.path.realpath(directory if "*" in last else path)
    return any(os.path.commonpath([root, real]) == root for root in roots)
