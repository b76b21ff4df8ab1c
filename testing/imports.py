"""Which modules a web worker really loads: a fresh interpreter sets Django up (every app's
ready()) and imports the given modules while an import hook notes who imported what first."""

from __future__ import annotations

import json
import subprocess
import sys

from testing.processes import ROOT

# Run in a fresh interpreter: which forbidden modules got loaded, and by which module first.
IMPORT_PROBE = """
import importlib, json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "mailadmin.settings_test"
forbidden, modules = json.loads(sys.argv[1]), json.loads(sys.argv[2])
loaded_by = {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if any(name == f or name.startswith(f + ".") for f in forbidden) and name not in loaded_by:
            frame = sys._getframe(1)
            while frame and frame.f_globals.get("__name__", "").startswith(("importlib", "_frozen")):
                frame = frame.f_back
            loaded_by[name] = frame.f_globals.get("__name__", "?") if frame else "?"
        return None

sys.meta_path.insert(0, Watch())
import django
django.setup()
for module in modules:
    importlib.import_module(module)
print(json.dumps(loaded_by))
"""


def modules_loaded_by(modules, forbidden) -> dict[str, str]:
    """forbidden module → the module that imported it first, in a fresh process that set Django up
    (every app's ready()) and imported `modules`, as a web worker does."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, json.dumps(list(forbidden)), json.dumps(list(modules))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
