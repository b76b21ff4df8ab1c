# Thin wrappers: the work is in scripts/, so CI and a newcomer run exactly the same thing.
.PHONY: run stop install check-deploy test test-postgres bench lint fuzz

run:
	scripts/run

# Stops a `make run` started from another terminal (or left behind by a lost one).
stop:
	scripts/stop

# Installs the console as systemd services on this Debian 12 host (root): see README, "Deploying on a relay".
install:
	scripts/install $(ARGS)

# Django's deployment checks under the production settings: must print no issue.
check-deploy:
	scripts/check-deploy

test:
	scripts/test $(ARGS)

# The same suite against a throw-away PostgreSQL cluster (MAILADMIN_DATABASE_URL).
test-postgres:
	scripts/test-postgres $(ARGS)

bench:
	scripts/bench

fuzz:
	scripts/fuzz

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
