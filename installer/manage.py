"""mailadmin-manage (installed in /usr/local/sbin by `make install`): manage.py of the installed
console, run as root, executed as the web tier's user in the environment its units get
(/etc/mailadmin/mailadmin.env, then local.env), e.g. `mailadmin-manage jointoken relay2`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from installer import render
from installer.steps import as_user


def main(argv: list[str]) -> None:
    layout = render.Layout(hostname="")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for path in (layout.env_file, layout.local_env_file):
        if Path(path).exists():
            env |= render.parse_env(Path(path).read_text())
    os.chdir(layout.prefix)
    argv = as_user(layout.user, [f"{layout.venv}/bin/python", f"{layout.prefix}/manage.py", *argv])
    os.execvpe(argv[0], argv, env)


if __name__ == "__main__":
    main(sys.argv[1:])
