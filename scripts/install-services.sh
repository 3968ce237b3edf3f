#!/usr/bin/env bash
# Install Debian's PostgreSQL (15) server and Redis for the Celery tests and `make demo-celery`
# (airflow_s3pput/testing/celery_stack.py starts private instances of both on loopback).
# Idempotent and quick when both are there. The packages' own services are not started: a
# policy-rc.d that refuses every start is in place while apt installs them (the tests start
# their own servers on free ports; nothing is left listening on 5432 or 6379).
# Never fails the build: on a machine without apt (or without root) it warns and exits 0, and
# the Celery tests then skip with a reason (scripts/apt-preamble.sh).
set -u
NAME=install-services
SKIPPED="the Celery tests will be skipped (and fail under CI)"
# shellcheck source=scripts/apt-preamble.sh
source "$(dirname "$0")/apt-preamble.sh"

have_services() {
    compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null && [ -x /usr/bin/redis-server ]
}

if have_services; then
    echo "install-services: postgresql and redis-server already installed"
    exit 0
fi

apt_ready
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

apt_update
apt_install postgresql redis-server

if have_services; then
    echo "install-services: $(ls -d /usr/lib/postgresql/*/bin/postgres | tail -1) and $(/usr/bin/redis-server --version | cut -d' ' -f1-3) installed"
else
    echo "install-services: WARNING: postgres or redis-server still missing after install" >&2
fi
exit 0
