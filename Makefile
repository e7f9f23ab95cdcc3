# Developer commands (contract section 5). Every target that needs them runs set-up first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
LOCAL := .local
JARS := $(LOCAL)/jars
# Spark's JVM dependencies: hadoop-aws matching pyspark 3.5's Hadoop client (3.3.4), the AWS SDK
# bundle that hadoop-aws 3.3.4 was built against, and the PostgreSQL JDBC driver.
JAR_ARTIFACTS := org.apache.hadoop:hadoop-aws:3.3.4:jar \
                 com.amazonaws:aws-java-sdk-bundle:1.12.262:jar \
                 org.postgresql:postgresql:42.7.14:jar

.PHONY: setup up down seed run backfill demo test test-fast bench

setup: $(VENV)/.installed $(JARS)/.fetched

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(JARS)/.fetched:
	mkdir -p $(JARS)
	for artifact in $(JAR_ARTIFACTS); do \
	  mvn --batch-mode --quiet dependency:copy -Dartifact=$$artifact -DoutputDirectory=$(JARS) || exit 1; \
	done
	touch $@

up: setup
	$(PY) -m dev.local_aws up

down:
	@if [ -x $(PY) ]; then $(PY) -m dev.local_aws down; fi

seed: setup
	$(PY) -m dev.commands seed "$(DATA)"

run: setup
	$(PY) -m dev.commands run "$(DATE)"

backfill: setup
	$(PY) -m dev.commands backfill "$(FROM)" "$(TO)" "$(PARALLEL)"

demo: up
	$(PY) -m dev.commands demo

test: setup
	$(VENV)/bin/pytest

# The tier to run after every change: pure Python, lint, DAG integrity and in-process Spark
# transforms; no local stack, no Airflow services and no network.
test-fast: setup
	$(VENV)/bin/pytest -m "not stack and not network"

bench: up
	$(PY) -m dev.bench
