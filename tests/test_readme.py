"""The README stays true: its DAG example is the one CI runs, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def snippet(text: str, name: str) -> str:
    match = re.search(rf"^# \[START {name}\]\n.*?^# \[END {name}\]$", text, re.S | re.M)
    assert match, f"no {name} snippet"
    return match.group(0)


def test_readme_dag_example_is_cut_from_the_example_dag() -> None:
    readme = (REPO / "README.md").read_text()
    dag = (REPO / "dags_examples" / "s3pput_daily.py").read_text()
    assert snippet(readme, "s3pput_daily") == snippet(dag, "s3pput_daily")


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    assert "make test   # the whole test suite" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_readme_documents_every_cli_option() -> None:
    from airflow_s3pput.cli import build_parser

    readme = (REPO / "README.md").read_text()
    flags = {s for action in build_parser().declared for s in action.option_strings if s.startswith("--")}
    missing = sorted(f for f in flags - {"--help", "--version"} if f"`{f}" not in readme)
    assert not missing, f"options missing from the README table: {missing}"
