"""Parse DAG files as Airflow's DAG processor does and fail on any import error.

    python scripts/parse_dags.py PATH...    (files or folders of DAG files)

Used by ``scripts/check-floors.sh`` (the example DAGs at the lowest versions pyproject.toml
allows) and by the provider-discovery test (a DAG that knows nothing of s3pput). Runs in a
throwaway AIRFLOW_HOME unless one is set; needs no metadata database. Each file must yield at
least one DAG: a file that parses to nothing is an error too.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def main(paths: list[str]) -> int:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="s3pput-parse-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "false")
    try:  # where Airflow 3.2 and later keep it; older 3.x in airflow.models
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined,unused-ignore]

    files = sorted(f for p in map(Path, paths) for f in ([p] if p.is_file() else p.glob("*.py")))
    if not files:
        print("parse_dags: no DAG files in " + " ".join(paths), file=sys.stderr)
        return 2
    failed = 0
    for file in files:
        bag = DagBag(dag_folder=str(file))
        for where, error in sorted(bag.import_errors.items()):
            print(f"parse_dags: {where}: {error.strip()}", file=sys.stderr)
            failed += 1
        if not bag.import_errors and not bag.dags:
            print(f"parse_dags: {file}: no DAG", file=sys.stderr)
            failed += 1
        if not bag.import_errors:
            print(f"parse_dags: {file.name}: {', '.join(sorted(bag.dags))}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
