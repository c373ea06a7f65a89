# Set-up and everyday commands. `make up` runs the stack, `make test` runs every test
# (installing what the tests need on a fresh Debian machine first).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
BIN := $(VENV)/bin
PG_MAJOR ?= 15
PG_BIN := /usr/lib/postgresql/$(PG_MAJOR)/bin
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# `kubectl kustomize` renders deploy/kubernetes/ for the unit tests: Debian's kubernetes-client,
# unless a kubectl is on PATH already (another package's /usr/bin/kubectl, which Debian's would
# collide with; the manifests render with kubectl 1.20's kustomize and with newer ones).
KUBECTL_PACKAGE := $(if $(shell command -v kubectl),,kubernetes-client)
APT_PACKAGES := postgresql-$(PG_MAJOR) postgresql-client-$(PG_MAJOR) libpq-dev gcc rsync procps util-linux zstd lz4 chromium chromium-driver prometheus $(KUBECTL_PACKAGE)
# Installing Debian's prometheus would start it as a service (init script or systemd unit): the
# tests run their own on free ports, and its init script failing where there is no init system
# would fail the install. While none exists, a policy-rc.d refuses that one start (exit 101).
POLICY_RC_D := /usr/sbin/policy-rc.d
COMPOSE := docker compose -f compose/docker-compose.yml --env-file compose/.env

.PHONY: install system-packages bench-packages test unit integration container lint format up down local bench bench-chains clean certs lock
SECRETS_DIR := compose/secrets
SECRETS := $(addprefix $(SECRETS_DIR)/,postgres_password barman_db_password barman_streaming_password grafana_admin_password)
# Secrets that are off until a person writes them (S3 keys, webhook and dead-man's URLs): empty
# files, so compose has something to mount and the daemon reads "not set".
OPTIONAL_SECRETS := $(addprefix $(SECRETS_DIR)/,aws_access_key_id aws_secret_access_key alert_webhook_url deadman_url)
# TLS to the stack's PostgreSQL: a CA and a server certificate (compose/make-certs.sh).
TLS_FILES := $(addprefix $(SECRETS_DIR)/,postgres_ca.crt postgres_ca.key postgres_server.crt postgres_server.key)

# Barman 3.20 needs Python >= 3.12; Debian bookworm's python3 is 3.11, pyenv's builds are used.
PYTHON ?= $(shell for c in python3.13 python3.12 \
	$$(ls -d $$(pyenv root 2>/dev/null || echo /nonexistent)/versions/3.1[2-9]*/bin/python3 2>/dev/null) \
	/usr/bin/python3.13 /usr/bin/python3.12 python3; do \
	$$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$c; break; }; done)

# Installs whichever of the Debian packages $(1) are missing (as root, or through sudo).
define apt-install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq; \
		if [ ! -e $(POLICY_RC_D) ]; then \
			printf '#!/bin/sh\n# make install: no prometheus service\nfor a; do case "$$a" in prometheus|prometheus.service) exit 101;; esac; done\nexit 0\n' \
				| $(SUDO) tee $(POLICY_RC_D) >/dev/null; \
			$(SUDO) chmod 755 $(POLICY_RC_D); \
			trap '$(SUDO) rm -f $(POLICY_RC_D)' EXIT; \
		fi; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

install: system-packages $(VENV)/.installed

system-packages:
	$(call apt-install,$(APT_PACKAGES))
	@test -x $(PG_BIN)/postgres || { echo "no PostgreSQL $(PG_MAJOR) server in $(PG_BIN)"; exit 1; }

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "no Python >= 3.12 found (Barman 3.20 needs it); install one or set PYTHON="; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,barman]'
	touch $@

lint: install
	$(BIN)/ruff check barman_supervisor tests bench deploy
	$(BIN)/ruff format --check barman_supervisor tests bench deploy
	$(BIN)/mypy

format: install
	$(BIN)/ruff format barman_supervisor tests bench deploy
	$(BIN)/ruff check --fix barman_supervisor tests bench deploy

# docs/configuration.md, rendered from the table of variables (barman_supervisor/config/variables.py);
# a unit test fails while the committed page differs.
.PHONY: docs
docs: install
	$(BIN)/python -m barman_supervisor.config.reference > docs/configuration.md.tmp
	mv docs/configuration.md.tmp docs/configuration.md

unit: install
	$(BIN)/pytest -q tests/unit

integration: install
	PG_BIN=$(PG_BIN) $(BIN)/pytest -q tests/integration

# Container tests, as root: start a Docker engine if none answers, build the images from Debian
# packages (no registry needed), run the stack with host networking.
container: install
	$(SUDO) $(BIN)/pytest -q -rfEs --durations=25 tests/container

# Every suite in one run, side by side on TEST_WORKERS workers (pytest-xdist): the suites mostly
# wait on PostgreSQL, Barman and Docker (one after the other: 29 minutes at a load under 1 on 2
# cores). A test file stays on one worker, so its module fixtures are built once; the container
# files come first because they are the longest. As root, for the container tests.
TEST_WORKERS ?= 4
test: lint
	$(SUDO) env PG_BIN=$(PG_BIN) $(BIN)/pytest -q -rfEs --durations=25 \
		-n $(TEST_WORKERS) --dist loadfile tests/container tests/integration tests/unit

# Random passwords, created once: 0644 files (both containers read them as uid 999) in a 0700
# directory.
$(SECRETS_DIR)/%:
	@install -d -m 0700 $(SECRETS_DIR)
	@umask 022; head -c 32 /dev/urandom | base64 | tr -d '/+=\n' > $@.tmp && mv $@.tmp $@
	@echo "created $@"

$(OPTIONAL_SECRETS):
	@install -d -m 0700 $(SECRETS_DIR)
	@umask 022; : > $@
	@echo "created $@ (empty: not set)"

# The CA and the server certificate, made once; `make certs` (and every `make up`) issues the
# server certificate anew when it ends within 30 days.
$(TLS_FILES) &:
	@compose/make-certs.sh $(SECRETS_DIR)

certs:
	@compose/make-certs.sh $(SECRETS_DIR)

# The compose stack: PostgreSQL 18 (POSTGRES_MAJOR in compose/.env) and the supervisor, backed up
# with no further step.
up: $(SECRETS) $(OPTIONAL_SECRETS) certs
	@test -f compose/.env || cp compose/.env.example compose/.env
	$(COMPOSE) up --build -d
	@echo "follow the logs: $(COMPOSE) logs -f barman"

down:
	$(COMPOSE) down

# No Docker: the daemon on this machine against the PostgreSQL named by PG_HOST/PG_PORT/...
local: install
	BARMAN_CONFIG_FILE=$${BARMAN_CONFIG_FILE:-$(CURDIR)/.local/barman.conf} \
	BARMAN_CONFIG_DIR=$${BARMAN_CONFIG_DIR:-$(CURDIR)/.local/barman.d} \
	BARMAN_HOME=$${BARMAN_HOME:-$(CURDIR)/.local/home} \
	$(BIN)/barman-supervisor run

# The image's Python dependencies, pinned with their hashes (docker/barman/requirements.lock; the
# Dockerfile installs it with pip --require-hashes): the project's dependencies and barman extra
# (pyproject.toml) with docker/barman/requirements.in, resolved by uv for the image's Python
# (Debian sid's python3, LOCK_PYTHON), which this machine need not have. Pins already in the file
# are kept unless they no longer fit; UPGRADE=1 takes the newest of everything.
LOCK_FILE := docker/barman/requirements.lock
LOCK_PYTHON ?= 3.14
lock: install
	$(BIN)/uv pip compile --quiet pyproject.toml docker/barman/requirements.in --extra barman \
		--generate-hashes --python-version $(LOCK_PYTHON) --python-platform x86_64-unknown-linux-gnu \
		--custom-compile-command "make lock" $(if $(filter 1,$(UPGRADE)),--upgrade) -o $(LOCK_FILE)

# Not part of `make test`: the code in bench/, its measured ratios in bench/results/
# (latest.json, latest.md).
bench: install bench-packages
	PG_BIN=$(PG_BIN) $(BIN)/python -m bench.run

# The peer the bench measures beside the daemon (phase peer): Debian's pgbackrest, test-only.
BENCH_PACKAGES := pgbackrest
bench-packages:
	$(call apt-install,$(BENCH_PACKAGES))

# Incremental and compressed backups (issue 13) need PostgreSQL >= 17: measured inside the product
# image (bench/results/chains.json, chains.md). Heavy: run it alone on the machine.
bench-chains: install
	IMAGE=$${IMAGE:-barman-supervisor:test} tests/container/build.sh
	IMAGE=$${IMAGE:-barman-supervisor:test} $(BIN)/python -m bench.chains

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
