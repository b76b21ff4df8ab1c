"""Static guarantees over the source tree: one module runs programs, no shell, no unescaped output."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ["mailadmin", "tlsconfig", "mailqueue", "tracking", "api"]
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
    for path in [*product_modules(), ROOT / "conftest.py", *sorted((ROOT / "testing").glob("*.py"))]:
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


def test_no_test_imports_conftest_or_another_test_file():
    """Helpers shared between tests live in testing/; conftest.py files and test files are imported by pytest alone."""

    def forbidden(module: str) -> bool:
        parts = module.split(".")
        if parts[-1] == "conftest":
            return True
        return (
            len(parts) >= 2
            and parts[-2] == "tests"
            and (parts[-1].startswith("test_") or parts[-1] == "hostile_values")
        )

    def imported_modules(path: Path, tree: ast.AST):
        package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield node.lineno, alias.name
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
                yield node.lineno, module
                for alias in node.names:  # `from mailqueue.tests import conftest` names a module too
                    yield node.lineno, f"{module}.{alias.name}" if module else alias.name
            elif (
                isinstance(node, ast.Call)
                and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
                in ("import_module", "__import__")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                yield node.lineno, node.args[0].value

    scanned, offenders = set(), []
    for top in ["mailadmin", "mailqueue", "tlsconfig", "testing", "bench", "fuzz"]:
        for path in sorted((ROOT / top).rglob("*.py")):
            scanned.add(path.relative_to(ROOT).as_posix())
            for lineno, module in imported_modules(path, ast.parse(path.read_text())):
                if forbidden(module):
                    offenders.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    assert {"testing/processes.py", "mailqueue/tests/test_faults.py", "tlsconfig/tests/test_deploy_live.py"} <= scanned
    assert forbidden("conftest") and forbidden("mailqueue.tests.conftest") and forbidden("mailadmin.tests.test_work")
    assert forbidden("mailadmin.tests.hostile_values") and not forbidden("testing.hostile_values")
    assert offenders == []


# What only a host's agent may import: it runs the MTA's binaries, reads or writes its files or
# connects to its daemon. The web tier reaches these only by naming a task (work rows, Celery).
AGENT_SIDE_PREFIXES = ("mailadmin.mta",)
AGENT_SIDE_MODULES = {
    "mailadmin.tasks",
    "mailqueue.tasks",
    "tlsconfig.tasks",
    "mailqueue.index",
    "mailqueue.spool",
    "mailqueue.spoolwatch",
    "mailqueue.fanout",
    "mailqueue.actions",
    "mailqueue.agentside",
    "mailqueue.sampling",
    "mailqueue.follower",
    "tlsconfig.deploy",
    "tlsconfig.probe",
    "tlsconfig.agentside",
    "tracking.follower",
    "tracking.agentside",
    "tracking.tasks",
}
# What gunicorn loads: the URLconfs (include() names two by string), settings, the apps and their models.
WEB_TIER_ENTRY_POINTS = [
    "mailadmin.urls",
    "mailqueue.urls",
    "tlsconfig.urls",
    "api.urls",
    "mailadmin.wsgi",
    "mailadmin.settings",
    "mailadmin.context",
    *[f"{app}.{module}" for app in PRODUCT_PACKAGES for module in ("apps", "models")],
]


def _module_path(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imports_of(path: Path, module: str) -> set[str]:
    """Every product module `module` imports, at any depth of its code (lazy imports included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in PRODUCT_PACKAGES and _module_path(name)}


def web_tier_modules() -> dict[str, str]:
    """Every product module the web tier imports, with the module that first imported it."""
    seen = {name: "(entry point)" for name in WEB_TIER_ENTRY_POINTS}
    todo = list(WEB_TIER_ENTRY_POINTS)
    while todo:
        module = todo.pop()
        path = _module_path(module)
        if path is None:
            continue
        for name in _imports_of(path, module):
            parent = name.rpartition(".")[0]
            for each in (parent, name) if parent and _module_path(parent) else (name,):
                if each not in seen:
                    seen[each] = module
                    todo.append(each)
    return seen


def test_the_web_tier_imports_no_agent_side_module():
    """No module gunicorn loads runs sendmail, opens an MTA path or connects to a daemon: those live
    in mailadmin/mta/ and the apps' agent-side modules, which only the workers import."""
    modules = web_tier_modules()
    assert "mailadmin.views" in modules and "mailqueue.views" in modules and "tlsconfig.views" in modules
    offenders = sorted(
        f"{name} (imported by {by})"
        for name, by in modules.items()
        if name.startswith(AGENT_SIDE_PREFIXES) or name in AGENT_SIDE_MODULES
    )
    assert offenders == []


def test_the_web_tier_opens_no_socket_and_reads_no_mta_path():
    """Belt and braces over the import rule: no web-tier module uses socket or smtplib at all."""
    offenders = []
    for name in web_tier_modules():
        path = _module_path(name)
        if path is None:  # an entry point an app does not have (tracking has no models yet)
            continue
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        bad = {m for m in imported if m.split(".")[0] in {"socket", "smtplib", "ssl", "fcntl"}}
        if bad:
            offenders.append(f"{name}: {sorted(bad)}")
    assert offenders == []


def test_m4safe_imports_no_subprocess_and_no_mta_module():
    """The pure cf/ modules (m4safe above all) run nothing and reach no agent code or model: the web
    tier imports them, and only an MTA host's agent runs m4 (mailadmin.mta.macronames)."""
    cf_dir = ROOT / "mailadmin" / "cf"
    cf_modules = sorted(cf_dir.glob("*.py"))
    assert cf_dir / "m4safe.py" in cf_modules
    offenders = []
    for path in cf_modules:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = "mailadmin.cf" if node.level else (node.module or "")
                if node.level and node.module:
                    base = f"{base}.{node.module}"
                modules = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for module in modules:
                if module.split(".")[0] in PROCESS_MODULES or module.startswith(
                    ("mailadmin.mta", "mailadmin.models", "mailadmin.cf.mta")
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {module}")
    assert offenders == []
    m4safe = ast.parse((cf_dir / "m4safe.py").read_text())
    defined = {node.name for node in ast.walk(m4safe) if isinstance(node, ast.FunctionDef)}
    assert not defined & {"macro_names", "m4_builtin_names", "scanned_names", "dumped_names"}
