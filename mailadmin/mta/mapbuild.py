"""The map and class files a build installs beside its cf, on the MTA host (agent side): where each
one lives, and how a build stages, checks and compiles them before anything live changes.

A build carries each file's source text under its name (ConfigBuild.maps: aliases, virtusertable,
mailertable, genericstable, domaintable, local-host-names, relay-domains, trusted-users). Where
it goes is never taken from a row: it is that fixed file name in the instance's conf directory as
the agent's own configuration gives it.

compile_into() writes the sources into a private staging directory and compiles them there:
the four database maps with `makemap hash`, aliases with sendmail itself (`-oA<staged> -bi`, so
the warnings newaliases prints are kept in the build log, marked, never discarded); the class
files need no compiling. Before that it refuses alias targets a console administrator must not
reach (an :include: or /file outside the instance's roots, a |program when the cf's prog mailer
is not smrsh), and after it notes each map the staged cf does not read from the file the console
writes: installed, such a map would change nothing, and the postmaster should know.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from mailadmin.cf.paths import under_any
from mailadmin.mta import agent
from mailadmin.mta.files import create_new, private_directory
from mailadmin.mta.gateway import CommandFailed, CommandResult, Mta

# File name → the name of the K line the cf reads it through.
DATABASE_MAPS = {
    "virtusertable": "virtuser",
    "mailertable": "mailertable",
    "genericstable": "generics",
    "domaintable": "domaintable",
}
# File name → the class its F line fills.
CLASS_FILES = {"local-host-names": "w", "relay-domains": "R", "trusted-users": "t"}
ALIASES = "aliases"
MAP_NAMES = (ALIASES, *DATABASE_MAPS, *CLASS_FILES)
# What puts the reading line into the cf, for the note when it is missing.
READ_BY = {
    ALIASES: "ALIAS_FILE",
    "virtusertable": "FEATURE(`virtusertable')",
    "mailertable": "FEATURE(`mailertable')",
    "genericstable": "FEATURE(`genericstable')",
    "domaintable": "FEATURE(`domaintable')",
    "local-host-names": "FEATURE(`use_cw_file')",
    "relay-domains": "confCR_FILE",
    "trusted-users": "FEATURE(`use_ct_file')",
}
SOURCE_MODE = 0o640
DB_MODE = 0o640


class MapBuildFailed(Exception):
    """A map cannot be built or is refused; `log` holds what ran and what it printed."""

    def __init__(self, message: str, log: list[str]):
        super().__init__(message)
        self.log = log


def check_name(name: str) -> str:
    if name not in MAP_NAMES:
        raise MapBuildFailed(f"{name!r} is not a map or class file the console manages", [])
    return name


def conf_dir(server) -> Path:
    return Path(agent.instance(server.name).conf_dir)


def source_path(server, name: str) -> Path:
    """The live file of map `name` on this host: its fixed name in the instance's conf directory."""
    return conf_dir(server) / check_name(name)


def is_compiled(name: str) -> bool:
    return name == ALIASES or name in DATABASE_MAPS


def installed_files(server, name: str) -> list[Path]:
    """The live files of map `name`: its source, and its .db when sendmail reads a compiled one."""
    source = source_path(server, name)
    return [source, db_of(source)] if is_compiled(name) else [source]


def db_of(source: Path) -> Path:
    return source.with_name(source.name + ".db")


def live_sources(server) -> tuple[dict[str, str], list[str]]:
    """The source text of every managed map file that exists on the host now (for the host's build),
    and the names of those that are not UTF-8 (kept with replacement characters)."""
    found, not_text = {}, []
    for name in MAP_NAMES:
        path = source_path(server, name)
        if path.is_file():
            data = path.read_bytes()
            try:
                found[name] = data.decode()
            except UnicodeDecodeError:
                found[name] = data.decode(errors="replace")
                not_text.append(name)
    return found, not_text


def encoded(text: str) -> bytes:
    return text.encode()


# --- aliases: the targets a build must not reach ------------------------------------------------


def alias_entries(text: str) -> list[tuple[int, str, str]]:
    """(line number, name, right-hand side) per alias; continuation lines (leading blank) joined."""
    entries: list[tuple[int, str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t" and entries:
            first, name, rhs = entries[-1]
            entries[-1] = (first, name, f"{rhs} {line.strip()}")
            continue
        name, _, rhs = line.partition(":")
        entries.append((number, name.strip(), rhs.strip()))
    return entries


def alias_targets(rhs: str) -> list[str]:
    """The comma-separated targets of an alias (commas inside double quotes do not split)."""
    targets, current, quoted = [], "", False
    for ch in rhs:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            targets.append(current)
            current = ""
        else:
            current += ch
    targets.append(current)
    return [t.strip().strip('"').strip() for t in targets if t.strip()]


def prog_mailer(cf_text: str) -> str:
    """The P= of the cf's prog mailer (the program every |target runs under), '' if it has none."""
    found = re.search(r"^Mprog,\s*P=([^,\s]+)", cf_text, re.M)
    return found.group(1) if found else ""


def refused_alias_targets(text: str, roots: tuple[str, ...], prog: str) -> list[str]:
    """Why each alias is refused: a file or :include: outside the roots, a program without smrsh."""
    problems = []
    for number, name, rhs in alias_entries(text):
        for target in alias_targets(rhs):
            where = f"aliases line {number} ({name})"
            if target.startswith("|"):
                if os.path.basename(prog) != "smrsh":
                    problems.append(
                        f"{where}: the program target {target!r} is refused: the cf's prog mailer is "
                        f"{prog or 'missing'}, not smrsh (FEATURE(`smrsh') limits programs to smrsh's directory)"
                    )
            elif target.startswith(":include:") or target.startswith("/"):
                path = target.removeprefix(":include:").strip()
                if not under_any(path, roots):
                    problems.append(
                        f"{where}: {target!r} lies outside the directories the agent serves ({', '.join(roots)})"
                    )
    return problems


# --- does the staged cf read each map from the file the console writes? -------------------------


def first_path(words: list[str]) -> str:
    """The file a K or F line names: its first word that is not a -flag."""
    return next((w for w in words if not w.startswith("-")), "")


def cf_readers(cf_text: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """What the cf reads: K map name → file, class name → file, and the AliasFile entries."""
    keyed, classes, alias_files = {}, {}, []
    for line in cf_text.splitlines():
        if line.startswith("K"):
            words = line[1:].split()
            if len(words) >= 2:
                keyed[words[0]] = first_path(words[2:]) if len(words) > 2 else ""
        elif line.startswith("F") and len(line) > 1:
            name = line[1]
            classes[name] = first_path(line[2:].split())
        elif line.startswith("O AliasFile="):
            for item in line.removeprefix("O AliasFile=").split(","):
                item = item.strip()
                alias_files.append(item.split(":", 1)[1] if re.match(r"^[a-z]+:", item) else item)
    return keyed, classes, alias_files


def unread_notes(cf_text: str, names: list[str], directory: Path) -> list[str]:
    """A note for each map the staged cf does not read from `directory`/name: it would have no effect."""
    keyed, classes, alias_files = cf_readers(cf_text)
    notes = []
    for name in names:
        expected = os.path.normpath(directory / name)
        if name == ALIASES:
            reads, what = [os.path.normpath(p) for p in alias_files if p], "O AliasFile="
        elif name in DATABASE_MAPS:
            path = keyed.get(DATABASE_MAPS[name])
            reads, what = ([os.path.normpath(path)] if path else []), f"K{DATABASE_MAPS[name]}"
        else:
            path = classes.get(CLASS_FILES[name])
            reads, what = ([os.path.normpath(path)] if path else []), f"F{CLASS_FILES[name]}"
        if expected in reads:
            continue
        if not reads:
            notes.append(
                f"NOTE: {name} is installed but has no effect: the cf has no {what} line reading it "
                f"(add {READ_BY[name]} to the build)"
            )
        else:
            notes.append(
                f"NOTE: {name} is installed but has no effect: the cf's {what} line reads {', '.join(reads)}, "
                f"not {expected}"
            )
    return notes


def optional_maps(cf_text: str) -> set[str]:
    """The K maps declared with -o: sendmail does without their file."""
    return {
        line[1:].split()[0]
        for line in cf_text.splitlines()
        if line.startswith("K") and len(line[1:].split()) > 2 and "-o" in line[1:].split()[2:]
    }


def missing_notes(cf_text: str, maps: dict[str, str], directory: Path) -> list[str]:
    """A warning for each database map the cf reads from `directory` that neither the build installs
    nor the host has: sendmail cannot open it, and every lookup in it fails."""
    keyed, _, _ = cf_readers(cf_text)
    optional = optional_maps(cf_text)
    notes = []
    for name, map_name in DATABASE_MAPS.items():
        path = directory / name
        if keyed.get(map_name) != str(path) or map_name in optional or name in maps or db_of(path).exists():
            continue
        notes.append(
            f"WARNING: the cf reads {name} from {path}, which does not exist and this build does not install: "
            f"sendmail cannot open it and fails every lookup in it (add {name} rows, even none, to the build)"
        )
    return notes


# --- staging and compiling ----------------------------------------------------------------------


def output_lines(result: CommandResult, what: str) -> list[str]:
    """What a compile printed, each warning or error line marked so the build log shows it."""
    lines = []
    for line in (result.stdout_text + result.stderr_text).splitlines():
        if not line.strip():
            continue
        marked = re.search(r"warning|error|unbalanced|unknown|missing", line, re.I)
        lines.append(f"WARNING ({what}): {line}" if marked else line)
    return lines


def compile_into(directory: Path, maps: dict[str, str], mta: Mta, cf_path: Path) -> list[str]:
    """Write each map's source into `directory` (private: created 0700 if missing) and compile it
    there, checked against the staged cf at `cf_path`; returns the log lines, warnings marked.

    Raises MapBuildFailed (with sendmail's or makemap's output in its message and log) for an
    unknown map name, a refused alias target, or a compile that fails. Nothing live is touched.
    """
    for name in maps:
        check_name(name)
    private_directory(directory)
    instance = agent.instance(mta.server.name)
    cf_text = cf_path.read_text(errors="replace")
    log: list[str] = []
    if ALIASES in maps:
        refused = refused_alias_targets(maps[ALIASES], instance.roots, prog_mailer(cf_text))
        if refused:
            raise MapBuildFailed("the aliases are refused: " + "; ".join(refused), refused)
    for name in MAP_NAMES:
        if name not in maps:
            continue
        data = encoded(maps[name])
        if b"\0" in data:
            raise MapBuildFailed(f"{name}: a NUL byte in the source", log)
        staged = directory / name
        create_new(staged, data, SOURCE_MODE)
        if not is_compiled(name):
            log.append(f"{name}: a class file, read as it is ({len(data.splitlines())} lines)")
            continue
        db_of(staged).unlink(missing_ok=True)  # a crashed run's leftover: the compiler writes a fresh one
        try:
            if name == ALIASES:
                result = mta.compile_aliases(staged, cf_path)
            else:
                result = mta.makemap("hash", staged, cf_path=cf_path)
        except CommandFailed as exc:
            log.append(f"$ {exc.result.command_line}")
            log.extend(f"ERROR ({name}): {line}" for line in exc.output.splitlines() if line.strip())
            raise MapBuildFailed(f"{name} does not compile: {exc}", log) from exc
        log.append(f"$ {result.command_line}")
        log.extend(output_lines(result, name))
    log.extend(unread_notes(cf_text, [n for n in MAP_NAMES if n in maps], Path(instance.conf_dir)))
    log.extend(missing_notes(cf_text, maps, Path(instance.conf_dir)))
    return log


def discard(directory: Path) -> None:
    """Remove a staging directory compile_into filled (it is the agent's private one)."""
    shutil.rmtree(directory, ignore_errors=True)
