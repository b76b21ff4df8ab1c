"""Static guarantees over the source tree: one module runs programs, no shell, no unescaped output."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ["mailadmin", "tlsconfig", "mailqueue"]
GATEWAY = ROOT / "mailadmin" / "mta" / "gateway.py"
# Forks without exec: its children run the index's own Python readers and leave with _exit,
# they never run a program (which stays the gateway's job).
FORK_ONLY = {ROOT / "mailqueue" / "fanout.py": {"os.fork"}}
PROCESS_MODULES = {"subprocess", "pty", "asyncio.subprocess"}
PROCESS_CALLS = {
    "system",
    "popen",
    "execv",
    "execve",
    "execvp",
    "execvpe",
    "execl",
    "execle",
    "execlp",
    "execlpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "spawnvpe",
    "spawnl",
    "spawnle",
    "posix_spawn",
    "posix_spawnp",
    "fork",
    "forkpty",
}


def product_modules():
    for package in PRODUCT_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "tests" not in path.relative_to(ROOT).parts:
                yield path


def test_the_scan_sees_the_whole_product():
    names = {p.relative_to(ROOT).as_posix() for p in product_modules()}
    assert {"mailadmin/mta/gateway.py", "mailadmin/views.py", "mailadmin/work.py"} <= names


def test_only_the_gateway_starts_processes():
    """And the one module that forks runs no program in its children."""
    offenders = []
    for path in product_modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported = {node.module or ""} | {f"{node.module}.{a.name}" for a in node.names}
                if node.module == "os":
                    imported |= {f"os.{a.name}" for a in node.names if a.name in PROCESS_CALLS}
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
                imported = {f"os.{node.attr}"} if node.attr in PROCESS_CALLS else set()
            else:
                continue
            bad = {
                m
                for m in imported
                if m in PROCESS_MODULES
                or m.split(".")[0] in PROCESS_MODULES
                or (m.startswith("os.") and m[3:] in PROCESS_CALLS)
            }
            bad -= FORK_ONLY.get(path, set())
            if bad and path != GATEWAY:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {sorted(bad)}")
    assert offenders == []


def test_only_the_spool_watch_calls_libc_and_only_for_inotify():
    """ctypes could reach system() or exec*(); the one module using it binds inotify and nothing else."""
    watch_module = ROOT / "mailqueue" / "spoolwatch.py"
    users = []
    for path in product_modules():
        tree = ast.parse(path.read_text())
        imports = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imports |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        if any(name and name.split(".")[0] == "ctypes" for name in imports):
            users.append(path)
    assert users == [watch_module]
    tree = ast.parse(watch_module.read_text())
    bound = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "libc"
    }
    assert bound == {"inotify_init1", "inotify_add_watch"}


def test_nothing_runs_through_a_shell():
    offenders = []
    for path in [*product_modules(), ROOT / "conftest.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                offenders.append(f"{path.relative_to(ROOT)}:{node.value.lineno}")
    assert offenders == []


def test_no_template_or_view_switches_escaping_off():
    offenders = []
    for path in ROOT.glob("templates/**/*.html"):
        text = path.read_text()
        if re.search(r"\|\s*safe\b|{%\s*autoescape\s+off", text):
            offenders.append(str(path.relative_to(ROOT)))
    for path in product_modules():
        if re.search(r"\bmark_safe\b|\bSafeString\b|Template\(|from_string\(", path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_no_task_is_delayed_past_the_visibility_timeout():
    for path in product_modules():
        assert not re.search(r"\b(countdown|eta)\s*=", path.read_text()), path
