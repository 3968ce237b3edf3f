"""Build-time check of the airflow-s3pput image, run by docker/Dockerfile after scripts/install.sh.

``scripts/install.sh --runtime`` installs ``requirements/runtime.lock`` into the Airflow image's own
environment. The lock pins ``apache-airflow`` itself, so a lock that drifted from the base image
would silently swap Airflow under the image's entrypoint. This script fails the build when:

- the interpreter is not the Python the lock was compiled for;
- ``apache-airflow`` is not the version of the base image;
- a distribution the compose stack needs is missing (the Celery executor and its Redis broker,
  the Postgres driver, the Amazon provider, this package);
- this package is installed editable (it would depend on the source tree) or does not register
  its provider entry point;
- ``pip check`` reports a conflict: the lock replaced a version that another package of the base
  image (a provider we do not use, say) requires otherwise. Such an image may work today and
  break on the first import of that package, so the build stops and names the conflict.

    python docker/check_image.py --airflow-version 3.3.2 --python-version 3.11
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata

PACKAGE = "airflow-s3pput"
PROVIDER_GROUP = "apache_airflow_provider"
# Each entry is satisfied by any one of its alternatives.
REQUIRED: tuple[tuple[str, ...], ...] = (
    (PACKAGE,),
    ("apache-airflow-providers-amazon",),
    ("apache-airflow-providers-celery",),
    ("redis",),
    ("psycopg2-binary", "psycopg2"),
)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _editable(dist: str) -> bool:
    text = metadata.distribution(dist).read_text("direct_url.json")
    if not text:
        return False
    return bool(json.loads(text).get("dir_info", {}).get("editable", False))


def check(
    airflow_version: str,
    python_version: str,
    required: Sequence[Sequence[str]] = REQUIRED,
    *,
    package: str = PACKAGE,
) -> list[str]:
    """Every problem found, as a sentence; empty when the image is sound."""
    problems: list[str] = []
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != python_version:
        problems.append(f"Python is {running}, the lock is for {python_version}")
    installed = _version("apache-airflow")
    if installed != airflow_version:
        problems.append(f"apache-airflow is {installed}, the base image ships {airflow_version}")
    for alternatives in required:
        if not any(_version(dist) for dist in alternatives):
            problems.append(f"missing distribution: {' or '.join(alternatives)}")
    if _version(package) is not None:
        if _editable(package):
            problems.append(f"{package} is installed editable; the image needs --no-editable")
        module = package.replace("-", "_") + "."
        providers = metadata.entry_points(group=PROVIDER_GROUP)
        if not any(ep.value.startswith(module) for ep in providers):
            problems.append(f"{package} registers no '{PROVIDER_GROUP}' entry point")
    return problems


def pip_check(python: str = sys.executable) -> list[str]:
    """``pip check`` of ``python``'s environment: one problem per conflict it reports."""
    result = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return []
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return [f"pip check: {line}" for line in lines] or [f"pip check failed with exit {result.returncode}"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airflow-version", required=True)
    parser.add_argument("--python-version", required=True)
    args = parser.parse_args(argv)

    problems = check(args.airflow_version, args.python_version) + pip_check()
    for problem in problems:
        print(f"check_image: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"check_image: ok ({PACKAGE} {_version(PACKAGE)}, apache-airflow {args.airflow_version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
