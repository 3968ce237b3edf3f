"""The engine must import and work without Airflow: no engine module may import ``airflow``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_s3pput

PACKAGE = Path(airflow_s3pput.__file__).parent
ENGINE_MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__main__") + sorted(
    f"transport/{p.stem}" for p in (PACKAGE / "transport").glob("*.py")
)


def test_engine_modules_found() -> None:
    assert {"walker", "engine", "cli", "putter", "pool", "stats", "modes", "transport/selection"} <= set(
        ENGINE_MODULES
    )


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_no_airflow_import_in_source(module: str) -> None:
    imported = _imports(PACKAGE / f"{module}.py")
    assert not {n for n in imported if n == "airflow" or n.startswith("airflow.")}


def test_no_airflow_in_sys_modules_after_import() -> None:
    code = (
        "import sys, importlib\n"
        f"for name in {ENGINE_MODULES!r}:\n"
        "    importlib.import_module('airflow_s3pput.' + name.replace('/', '.'))\n"
        "bad = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""


@pytest.mark.parametrize("module", [m for m in ENGINE_MODULES if not m.startswith("transport/")])
def test_the_engine_reaches_s3_only_through_the_transport_port(module: str) -> None:
    """Which library carries a call is decided in ``transport/selection.py`` alone: no engine module
    imports boto3, botocore, awscrt (but its checksums, which send nothing) or an adapter."""
    imported = _imports(PACKAGE / f"{module}.py") - {"awscrt.checksums"}
    libraries = {n for n in imported if n.split(".")[0] in ("boto3", "botocore", "awscrt")}
    adapters = {
        n
        for n in imported
        if n.startswith("airflow_s3pput.transport.") and n != "airflow_s3pput.transport.interface"
    }
    assert not libraries and not adapters, (libraries, adapters)
