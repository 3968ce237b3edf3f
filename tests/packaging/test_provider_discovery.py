"""Installing airflow-s3pput never breaks anyone else's DAGs.

Airflow calls every ``apache_airflow_provider`` entry point, unguarded, when it discovers
providers, which parsing a DAG that names an asset URI does. So the entry point must import
nothing of Airflow nor the operators: on an Airflow the provider does not support, or with an
operator module that fails to import, only DAGs that use s3pput may fail, and with one clear
line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]

UNRELATED_DAG = """
import pendulum
from airflow.sdk import DAG, Asset, task

with DAG("unrelated", schedule=[Asset("s3://some-bucket/key")], start_date=pendulum.datetime(2026, 1, 1)):

    @task
    def hello() -> None:
        print("hello")

    hello()
"""

#: In a fresh interpreter: any import of ``airflow_s3pput.provider`` fails, as it would where an
#: operator module cannot be imported (an Airflow too old for it, a broken install).
BREAK_THE_OPERATORS = """
import importlib.abc, sys

class Broken(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "airflow_s3pput.provider" or name.startswith("airflow_s3pput.provider."):
            raise ImportError("the operators cannot be imported here: " + name)
        return None

sys.meta_path.insert(0, Broken())
"""


def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path / "airflow_home")}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_entry_point_names_the_module_outside_the_provider() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    assert declared["apache_airflow_provider"] == {
        "provider_info": "airflow_s3pput.provider_info:get_provider_info"
    }
    ours = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_s3pput")]
    (installed,) = ours
    assert installed.value == "airflow_s3pput.provider_info:get_provider_info", "reinstall: make venv"


def test_the_entry_point_imports_no_airflow(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import json, sys
        from importlib.metadata import entry_points
        group = entry_points(group="apache_airflow_provider")
        (ours,) = [e for e in group if e.value.startswith("airflow_s3pput")]
        info = ours.load()()
        print(json.dumps({
            "name": info["package-name"],
            "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("airflow", "airflow_s3pput")),
        }))
        """
    )
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["name"] == "airflow-s3pput"
    assert seen["modules"] == ["airflow_s3pput", "airflow_s3pput.provider_info"]


@pytest.mark.parametrize("operators", ["importable", "broken"])
def test_an_unrelated_dag_parses_with_the_package_installed(tmp_path: Path, operators: str) -> None:
    """The DAG names an s3:// asset, which makes Airflow discover the providers while parsing it:
    ours is called (its metadata module is imported) and the DAG still parses, even when the
    operators cannot be imported."""
    dag = tmp_path / "unrelated.py"
    dag.write_text(UNRELATED_DAG)
    code = (BREAK_THE_OPERATORS if operators == "broken" else "") + textwrap.dedent(
        f"""
        import runpy, sys
        sys.argv = ["parse_dags", {str(dag)!r}]
        try:
            runpy.run_path({str(REPO / "scripts" / "parse_dags.py")!r}, run_name="__main__")
        except SystemExit as exc:
            print("parsed" if exc.code == 0 else "failed", "airflow_s3pput.provider_info" in sys.modules)
        """
    )
    done = _python(code, tmp_path)
    assert done.stdout.splitlines()[-1] == "parsed True", done.stdout + done.stderr


def test_a_dag_that_uses_the_provider_fails_with_one_clear_line_on_an_old_airflow(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import airflow
        airflow.__version__ = "3.1.8"  # as an Airflow this provider does not support reports
        try:
            import airflow_s3pput.provider
        except ImportError as exc:
            print(exc)
        """
    )
    done = _python(code, tmp_path)
    needed = "airflow-s3pput's provider needs apache-airflow>=3.2.0; this is Airflow 3.1.8"
    assert done.stdout.strip() == needed, done.stderr
