"""`python -m fuzz TARGET [libFuzzer arguments]`: one target under Atheris; exits non-zero on a crash."""

import importlib
import os
import sys

import atheris
import django

from fuzz import TARGETS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m fuzz {{{','.join(TARGETS)}}} [libFuzzer arguments]")
    target = sys.argv.pop(1)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailadmin.settings")
    # Coverage feedback from the project's own code only: instrumenting Django or cryptography's
    # Python layer would slow every execution for branches these targets do not own.
    with atheris.instrument_imports(include=["mailqueue", "tlsconfig"]):
        django.setup()
        check = importlib.import_module(f"fuzz.{target}").check
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


main()
