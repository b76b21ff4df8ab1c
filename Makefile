# Thin wrappers: the work is in scripts/, so CI and a newcomer run exactly the same thing.
.PHONY: run test test-postgres bench lint fuzz

run:
	scripts/run

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
