# Developer commands (docs/contract.md, section 5). Every target that needs them runs set-up first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
LOCAL := .local
JARS := $(LOCAL)/jars
# Spark's JVM dependencies (group:artifact:version, with their digests): dev/spark_jars.txt.
JAR_ARTIFACTS := $(shell awk '!/^\#/ && NF {print $$1 ":jar"}' dev/spark_jars.txt)

.PHONY: setup browser up down seed run backfill report demo airflow test test-fast bench docker-base-images

setup: $(VENV)/.installed $(JARS)/.fetched browser

# The browser test drives Debian's chromium through chromium-driver (no browser is downloaded from
# elsewhere). Installed only when missing, and only where apt-get may install as root; elsewhere a
# note says what the browser test needs.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium and chromium-driver (for the browser test)"; \
	    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null || exit 1; \
	  else \
	    echo "note: the browser test needs Debian's chromium and chromium-driver: sudo apt-get install chromium chromium-driver"; \
	  fi; \
	fi

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(JARS)/.fetched: dev/spark_jars.txt
	mkdir -p $(JARS)
	for artifact in $(JAR_ARTIFACTS); do \
	  mvn --batch-mode --quiet dependency:copy -Dartifact=$$artifact -DoutputDirectory=$(JARS) || exit 1; \
	done
	awk '!/^#/ && NF {split($$1, c, ":"); print $$2 "  $(JARS)/" c[2] "-" c[3] ".jar"}' dev/spark_jars.txt | sha256sum --quiet -c
	touch $@

up: setup
	$(PY) -m dev.local_aws up

# Stops the Airflow services of `make airflow` (and any a killed command left behind), then the stack.
down:
	@if [ -x $(PY) ]; then $(PY) -m dev.commands down; fi

seed: setup
	$(PY) -m dev.commands seed "$(DATA)"

run: setup
	$(PY) -m dev.commands run "$(DATE)" "$(BRIEF)"

backfill: setup
	$(PY) -m dev.commands backfill "$(FROM)" "$(TO)" "$(PARALLEL)"

report: setup
	$(PY) -m dev.commands report "$(FROM)" "$(TO)"

demo: up
	$(PY) -m dev.commands demo

airflow: up
	$(PY) -m dev.commands airflow

test: setup
	$(VENV)/bin/pytest

# The tier to run after every change: pure Python, lint, DAG integrity and in-process Spark
# transforms; no local stack, no Airflow services and no network.
test-fast: setup
	$(VENV)/bin/pytest -m "not stack and not network and not docker"

bench: up
	$(PY) -m dev.bench

# Only where Docker Hub cannot be reached: stand-ins for the base images the Dockerfile and
# docker-compose.yaml start from (debian:bookworm-slim, postgres:15), built from Debian's packages.
docker-base-images:
	dev/docker/base_images.sh
