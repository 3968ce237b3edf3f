# ruff: noqa: RUF001 - the tables use the multiplication sign and the en dash on purpose
"""The "Scale" section of BENCHMARKS.md, from the results of ``scale.py`` (``run.py --only scale``).

The section is written on its own: ``splice`` replaces it in (or appends it to) the document,
so a scale run leaves the rest of BENCHMARKS.md as the last full run wrote it, and a full run
keeps the last Scale section when it did not measure one.
"""

from __future__ import annotations

import statistics
from typing import Any

MIB = 1024 * 1024
HEADING = "## Scale"
#: the targets of issue 15
RSS_LIMIT_MIB = 100
RATE_TOLERANCE = 0.15
AIRFLOW_LIMIT = 1.25
XCOM_LIMIT = 100_000
FLAT_LIMIT = 1.25


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _mib(value: float | None) -> str:
    return "–" if not value else f"{value / MIB:.0f}"


def _n(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("holds" if ok else "misses")


def cli_rows(cli: dict[str, Any]) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The CLI table, and its target rows."""
    runs = cli.get("runs", [])
    lines = [
        "| tree | run | wall s | files/s | × 5,000-file rate | peak RSS MiB | verified runs "
        "| wall s of each run |",
        "|---:|---|---:|---:|---:|---:|---|---|",
    ]
    targets: list[tuple[str, str, str]] = []
    trees = sorted({r["tree"] for r in runs})
    reference = min(trees) if trees else None
    rates: dict[tuple[int, str], float | None] = {}
    for kind, label in (("first", "first upload"), ("update", "update re-run")):
        for tree in trees:
            mine = [r for r in runs if r["tree"] == tree and r["kind"] == kind]
            ok = [r for r in mine if r["verified"]]
            rate = _median([r["files_per_second"] for r in ok])
            rss = max((r["peak_rss_tree"] for r in ok), default=None)
            rates[(tree, kind)] = rate
            ref = rates.get((reference, kind)) if reference is not None else None
            ratio = rate / ref if rate and ref and tree != reference else None
            lines.append(
                f"| {tree:,} | {label} | {_n(_median([r['wall'] for r in ok]), 2)} | {_n(rate, 0)} | "
                f"{'–' if ratio is None else f'{ratio:.2f}×'} | {_mib(rss)} | {len(ok)}/{len(mine)} | "
                + " / ".join(f"{r['wall']:.2f}" + ("" if r["verified"] else " ✗") for r in mine)
                + " |"
            )
            if tree != reference and ok:
                targets.append(
                    (
                        f"CLI {tree:,} files, {label}: peak RSS ≤ {RSS_LIMIT_MIB} MiB",
                        f"{_mib(rss)} MiB",
                        _verdict(rss is not None and rss <= RSS_LIMIT_MIB * MIB),
                    )
                )
                targets.append(
                    (
                        f"CLI {tree:,} files, {label}: files/s within {RATE_TOLERANCE:.0%} "
                        f"of the {reference:,}-file rate",
                        "–" if ratio is None else f"{ratio:.2f}×",
                        _verdict(None if ratio is None else ratio >= 1 - RATE_TOLERANCE),
                    )
                )
    return lines, targets


def _peak(run: dict[str, Any], task_id: str) -> int | None:
    peaks = [t["peak_rss"] for t in run.get("tasks", {}).get(task_id, []) if t.get("peak_rss")]
    return max(peaks) if peaks else None


def _first(values: list[float]) -> float | None:
    return values[0] if values else None


def _durations(run: dict[str, Any], task_id: str) -> list[float]:
    return [t["duration"] for t in run.get("tasks", {}).get(task_id, []) if t.get("duration") is not None]


def airflow_rows(airflow: dict[str, Any]) -> tuple[list[str], list[tuple[str, str, str]]]:
    dag = airflow.get("dag") or {}
    cli = [r for r in airflow.get("cli", []) if r["verified"]]
    cli_wall = _median([r["wall"] for r in cli])
    puts = _durations(dag, "upload.put")
    ratio = dag["wall"] / cli_wall if dag.get("verified") and cli_wall else None
    each = " / ".join(f"{r['wall']:.2f}" for r in cli) or "no verified run"
    lines = [
        "| how | wall s | ×CLI | put tasks | put task s (min–max) | plan s | reduce s | "
        "plan peak RSS MiB | put task peak RSS MiB | verified |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---|",
        f"| bare CLI (median of {each}) | "
        f"{_n(cli_wall, 2)} | 1.00× | – | – | – | – | – | – | {len(cli)}/{len(airflow.get('cli', []))} |",
    ]
    if dag:
        lines.append(
            f"| `s3pput_upload`, scheduler + LocalExecutor ({airflow.get('parallelism')} slots), "
            f"default batch size | {_n(dag['wall'], 2)} | {'–' if ratio is None else f'{ratio:.2f}×'} | "
            f"{len(puts)} | {_n(min(puts, default=None))}–{_n(max(puts, default=None))} | "
            f"{_n(_first(_durations(dag, 'upload.plan')))} | "
            f"{_n(_first(_durations(dag, 'upload.reduce')))} | "
            f"{_mib(_peak(dag, 'upload.plan'))} | {_mib(_peak(dag, 'upload.put'))} | "
            f"{'yes' if dag.get('verified') else 'no: ' + str(dag.get('state'))} |"
        )
    targets = [
        (
            f"Airflow {airflow['tree']['files']:,} files (LocalExecutor, default batch size): "
            f"wall ≤ {AIRFLOW_LIMIT}× the CLI's",
            "–" if ratio is None else f"{ratio:.2f}×",
            _verdict(None if ratio is None else ratio <= AIRFLOW_LIMIT),
        )
    ]
    return lines, targets


def plan_rows(
    plan: dict[str, Any], airflow: dict[str, Any] | None
) -> tuple[list[str], list[tuple[str, str, str]]]:
    dag = plan.get("dag") or {}
    xcoms = dag.get("xcom_bytes", {})
    total = sum(xcoms.values())
    plan_peak = _peak(dag, "upload.plan")
    small_peak = _peak((airflow or {}).get("dag") or {}, "upload.plan")
    files = plan["tree"]["files"]
    lines = [
        "| files | run wall s | put tasks (dry run) | plan task s | plan peak RSS MiB "
        "| XComs in all, bytes | plan XCom bytes | wrote nothing | verified |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---|",
        f"| {files:,} | {_n(dag.get('wall'))} | {(dag.get('summary') or {}).get('batches', '–')} | "
        f"{_n(_first(_durations(dag, 'upload.plan')))} | {_mib(plan_peak)} | {total:,} | "
        f"{xcoms.get('upload.plan', 0):,} | {'yes' if plan.get('objects_written') == 0 else 'no'} | "
        f"{'yes' if dag.get('verified') else 'no'} |",
    ]
    targets = [
        (
            f"dry-run plan of {files:,} files: XComs ≤ {XCOM_LIMIT // 1000} kB in all",
            f"{total:,} bytes",
            _verdict(total <= XCOM_LIMIT if dag.get("verified") else None),
        )
    ]
    if plan_peak and small_peak:
        growth = plan_peak / small_peak
        small_files = airflow["tree"]["files"] if airflow else 0
        targets.append(
            (
                f"plan task memory flat ({small_files:,} → {files:,} files)",
                f"{_mib(small_peak)} → {_mib(plan_peak)} MiB ({growth:.2f}×)",
                _verdict(growth <= FLAT_LIMIT),
            )
        )
    return lines, targets


def _when(name: str, part: dict[str, Any]) -> str:
    load = part.get("loadavg")
    how = (
        f"load average {load[0]:.1f} → {load[1]:.1f}" if load else part.get("load_note", "load not recorded")
    )
    return f"`{name}` at {part.get('stamp', '?')} in {part.get('seconds', 0):.0f} s, {how}"


def render(scale: dict[str, Any]) -> str:
    """The whole section, heading included, ending with a newline."""
    out = [
        HEADING,
        "",
        "Written by `benchmarks/run.py --only scale` (parts: "
        + "; ".join(_when(name, part) for name, part in scale.items())
        + "). Each part ran on its own (`--scale-parts`), against a fresh local SeaweedFS; every "
        "upload was verified by listing its prefix. Peak RSS is the largest sum over the process "
        "tree for the CLI, and each task process's own high-water mark (`VmHWM`) under Airflow. "
        "On a 2-core machine shared with other jobs, a load average far above 2 slows every "
        "absolute time; the ratios within one part are the figures to compare.",
        "",
    ]
    targets: list[tuple[str, str, str]] = []
    sections: list[str] = []
    if "cli" in scale:
        lines, found = cli_rows(scale["cli"])
        targets += found
        sections += ["### The CLI at 100,000 files, against its 5,000-file rate", "", *lines, ""]
    if "airflow" in scale:
        lines, found = airflow_rows(scale["airflow"])
        targets += found
        sections += [
            f"### Airflow: {scale['airflow']['tree']['files']:,} files through `s3pput_upload`",
            "",
            *lines,
            "",
            "Triggered through the REST API; wall time from the POST to the API reporting the run "
            "finished. The bare CLI ran on the same tree just before, into a fresh prefix, while "
            "the same Airflow was up and idle.",
            "",
        ]
    if "plan" in scale:
        lines, found = plan_rows(scale["plan"], scale.get("airflow"))
        targets += found
        sections += [
            f"### A dry run over {scale['plan']['tree']['files']:,} files through `s3pput_upload`",
            "",
            *lines,
            "",
            "`dry_run: true`, the DAG's default batch size; XCom sizes are summed from Airflow's database "
            "over every task of the run (the plan's batch list, each put's stats, the summary).",
            "",
        ]
    if targets:
        out += ["| target | measured | verdict |", "|---|---|---|"]
        out += [f"| {label} | {value} | {verdict} |" for label, value, verdict in targets]
        out.append("")
    out += sections
    return "\n".join(out).rstrip("\n") + "\n"


def splice(document: str, section: str) -> str:
    """``document`` with its Scale section replaced by ``section`` (appended when it has none)."""
    lines = document.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == HEADING), None)
    if start is None:
        return document.rstrip("\n") + "\n\n" + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + tail if tail else "")


def extract(document: str) -> str | None:
    """The Scale section of ``document``, or ``None``."""
    lines = document.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == HEADING), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "".join(lines[start:end]).rstrip("\n") + "\n"
