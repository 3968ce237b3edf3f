#!/usr/bin/env bash
# Install Debian's PostgreSQL (15) server and Redis for the Celery tests and `make demo-celery`
# (airflow_s3pput/testing/celery_stack.py starts private instances of both on loopback).
# Idempotent and quick when both are there. The packages' own services are not started: a
# policy-rc.d that refuses every start is in place while apt installs them (the tests start
# their own servers on free ports; nothing is left listening on 5432 or 6379).
# Never fails the build: on a machine without apt (or without root) it warns and exits 0, and
# the Celery tests then skip with a reason.
set -u

have_services() {
    compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null && [ -x /usr/bin/redis-server ]
}

if have_services; then
    echo "install-services: postgresql and redis-server already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-services: WARNING: apt-get not found; the Celery tests will be skipped (and fail under CI)" >&2
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-services: WARNING: not root and no password-less sudo; the Celery tests will be skipped (and fail under CI)" >&2
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
    # exit 101: "action forbidden by policy", so the packages' postinst starts no server
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod 755 "$policy" && own_policy=1
fi
cleanup() {
    if [ -n "$own_policy" ]; then
        $SUDO rm -f "$policy"
    fi
}
trap cleanup EXIT

# One `apt-get update` per machine set-up: skip it when the package lists are fresh (make test
# runs install-browser.sh first, which updates them).
if find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -60 2>/dev/null | grep -q .; then
    echo "install-services: package lists updated within the hour; no apt-get update"
elif ! $SUDO apt-get update -q; then
    echo "install-services: WARNING: apt-get update failed; the Celery tests will be skipped (and fail under CI)" >&2
    exit 0
fi
if ! $SUDO apt-get install -y -q --no-install-recommends postgresql redis-server; then
    echo "install-services: WARNING: apt-get install postgresql redis-server failed; the Celery tests will be skipped (and fail under CI)" >&2
    exit 0
fi

if have_services; then
    echo "install-services: $(ls -d /usr/lib/postgresql/*/bin/postgres | tail -1) and $(/usr/bin/redis-server --version | cut -d' ' -f1-3) installed"
else
    echo "install-services: WARNING: postgres or redis-server still missing after install" >&2
fi
exit 0
