# ruff: noqa: RUF001 - the tables use the multiplication sign and the en dash on purpose
"""Smoke test of the benchmark harness: ``run.py --quick`` end to end, into a temporary output.

It asserts the shape of the result, never a timing: every tool has a row for every workload and
every run verified its object count. Not collected by the default suite (``testpaths = tests``);
run it with ``.venv/bin/python -m pytest benchmarks/test_quick.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_quick_run_has_a_verified_row_per_tool_and_workload(tmp_path: Path) -> None:
    output = tmp_path / "BENCHMARKS.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--output",
            str(output),
            "--raw-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "results-latest.json").read_text())
    tools = list(results["tools"])
    assert {"s3pput", "s5cmd", "aws-cli", "boto3-threads"} <= set(tools)
    assert results["workloads"] == ["small", "update", "large", "mixed"]
    for workload in results["workloads"]:
        runs = {r["tool"]: r for r in results["runs"] if r["workload"] == workload}
        assert set(runs) == set(tools), workload
        for tool, run in runs.items():
            assert run["verified"], (workload, tool, run["stderr_tail"][-500:])
            assert run["objects"] == run["expected_objects"], (workload, tool)
            if workload == "update":
                assert run["rewritten"] == 0, (workload, tool)
    assert all(m["verified"] for m in results["memory"])

    text = output.read_text()
    results_section = text.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    for workload in ("(a) small files", "(b) update re-run", "(c) one large file", "(d) mixed tree"):
        assert workload in results_section
    for tool in tools:
        rows = [
            line
            for line in results_section.splitlines()
            if line.startswith((f"| {tool} |", f"| **{tool}** |"))
        ]
        assert len(rows) == 4, (tool, rows)
        assert all("×" in row for row in rows), rows
