# Two commands do all set-up on a fresh machine: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run embedded-only test test-embedded serve worker clean

# Install pinned requirements into .venv and the pinned browser assets (OpenSeadragon, from the npm
# registry: package-lock.json) into node_modules; each re-runs only when its lock file changes.
setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

var/secret_key:
	mkdir -p var
	$(PY) -c "import secrets; print(secrets.token_urlsafe(50))" > $@
	chmod 600 $@

# `make run` loads the demo users, whose passwords (admin's too) are published: never into a server
# database. Checked first, before anything is installed or migrated (environment or `make run DATABASE_URL=`).
embedded-only:
	$(if $(DATABASE_URL),$(error make run is the embedded demo (SQLite, demo users with published passwords) and \
	DATABASE_URL is set: unset it, or run a deployment as README.md, "Configuration", says))

# Embedded demo: SQLite, ORM broker, no Redis. Serves on http://$(HOST):$(PORT)/ with one analysis
# worker and one training worker (its own queue: analysis never waits behind a training run).
run: export SECRET_KEY = $(file < var/secret_key)
run: embedded-only setup var/secret_key
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py load_demo
	@$(PY) manage.py qcluster & worker=$$!; \
	Q_CLUSTER_NAME=training $(PY) manage.py qcluster & trainer=$$!; \
	trap 'kill $$worker $$trainer 2>/dev/null' EXIT INT TERM; \
	echo; echo "PD-L1 platform: http://$(HOST):$(PORT)/"; \
	echo "Demo logins (user / password): pathologist / demo-path-pass, annotator / demo-annot-pass,"; \
	echo "  clinician / demo-clin-pass, admin / demo-admin-pass"; echo; \
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) pdl1site.asgi:application

# The whole suite. With DATABASE_URL/REDIS_URL set it runs against PostgreSQL and Redis;
# tests/test_embedded_mode.py covers the embedded SQLite mode either way. The import contracts
# (.importlinter: the layer order in README.md, "Layout") are checked first.
test: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

clean:
	rm -rf var/media/tmp .pytest_cache
