"""`make install`: the console installed as systemd services behind nginx's HTTPS (README,
"Deploying on a relay"). render.py makes the files (pure), steps.py writes them and runs the
commands; no module of the console imports this package."""
