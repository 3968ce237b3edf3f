# ruff: noqa: RUF001 - the tables use the multiplication sign and the en dash on purpose
"""Turn the raw results of ``run.py`` into the Markdown of ``BENCHMARKS.md``.

Only verified runs (exit 0, the right object count and bytes under the prefix) enter a median;
ratios are between medians of the same run of the harness.
"""

from __future__ import annotations

import statistics
from typing import Any

MIB = 1024 * 1024

TITLES = {
    "small": "(a) small files",
    "update": "(b) update re-run, nothing changed",
    "large": "(c) one large file",
    "mixed": "(d) mixed tree",
}
REFERENCE = "s5cmd"

#: issue 4's targets: (label, workload, measure, limit)
TARGETS = [
    ("(a) small files: wall ≤ 1.0× s5cmd", "small", "ratio", 1.0),
    ("(b) update re-run: wall ≤ 0.2× its own first upload", "update", "self", 0.2),
    ("(c) large file: wall ≤ 1.1× s5cmd", "large", "ratio", 1.1),
]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def aggregate(results: dict[str, Any], workload: str) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for run in results.get("runs", []):
        if run["workload"] != workload:
            continue
        row = table.setdefault(run["tool"], {"runs": [], "ok": []})
        row["runs"].append(run)
        if run["verified"]:
            row["ok"].append(run)
    for row in table.values():
        ok = row["ok"]
        row["wall"] = _median([r["wall"] for r in ok])
        row["cpu"] = _median([r["cpu"] for r in ok])
        row["rss"] = _median([r["peak_rss_tree"] for r in ok])
        row["rewritten"] = _median([r["rewritten"] for r in ok if "rewritten" in r])
    return table


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _s(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _mib(value: float | None) -> str:
    return "–" if value is None else f"{value / MIB:.0f}"


def tool_order(results: dict[str, Any]) -> list[str]:
    return list(results.get("tools", {}))


def workload_table(results: dict[str, Any], workload: str) -> list[str]:
    table = aggregate(results, workload)
    ref = table.get(REFERENCE, {})
    first = aggregate(results, "small") if workload == "update" else {}
    head = "| tool | wall s | CPU s | peak RSS MiB | wall ×s5cmd | CPU ×s5cmd | RSS ×s5cmd |"
    rule = "|---|---:|---:|---:|---:|---:|---:|"
    if workload == "update":
        head += " × own first upload | objects rewritten |"
        rule += "---:|---:|"
    head += " verified runs | wall s of each run |"
    rule += "---|---|"
    lines = [head, rule]
    for name in tool_order(results):
        row = table.get(name)
        if row is None:
            continue
        cells = [
            f"**{name}**" if name == "s3pput" else name,
            _s(row["wall"]),
            _s(row["cpu"]),
            _mib(row["rss"]),
            _x(_ratio(row["wall"], ref.get("wall"))),
            _x(_ratio(row["cpu"], ref.get("cpu"))),
            _x(_ratio(row["rss"], ref.get("rss"))),
        ]
        if workload == "update":
            own = first.get(name, {}).get("wall")
            cells += [_x(_ratio(row["wall"], own)), _s(row["rewritten"], 0)]
        cells += [
            f"{len(row['ok'])}/{len(row['runs'])}",
            " / ".join(f"{r['wall']:.2f}" + ("" if r["verified"] else " ✗") for r in row["runs"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def targets(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for label, workload, kind, limit in TARGETS:
        if workload not in results.get("workloads", []):
            continue
        table = aggregate(results, workload)
        mine = table.get("s3pput", {}).get("wall")
        if kind == "ratio":
            value = _ratio(mine, table.get(REFERENCE, {}).get("wall"))
        else:
            value = _ratio(mine, aggregate(results, "small").get("s3pput", {}).get("wall"))
        if value is None:
            rows.append((label, "not measured", "–"))
        else:
            verdict = (
                "holds" if value <= limit else f"misses by {value / limit:.2f}× ({value:.2f}× vs {limit}×)"
            )
            rows.append((label, f"{value:.2f}×", verdict))
    memory = [m for m in results.get("memory", []) if m["verified"]]
    if len(memory) >= 2:
        lo, hi = memory[0], memory[-1]
        growth = hi["peak_rss_tree"] / lo["peak_rss_tree"]
        per_file = (hi["peak_rss_tree"] - lo["peak_rss_tree"]) / max(1, hi["files"] - lo["files"])
        rows.append(
            (
                f"memory flat in the file count (dry run, {lo['files']:,} → {hi['files']:,} files)",
                f"{_mib(lo['peak_rss_tree'])} → {_mib(hi['peak_rss_tree'])} MiB ({growth:.2f}×, {per_file:.0f} B/file)",
                "holds" if growth <= 1.25 else "misses",
            )
        )
    airflow = results.get("airflow") or {}
    cli = airflow.get("cli_wall")
    for name, how in (("standalone", "scheduler, LocalExecutor"), ("dags_test", "airflow dags test")):
        runs = [r for r in airflow.get(name, []) if r.get("verified")]
        if not runs or not cli:
            continue
        # The default conf, warm (its last run): what a user gets; then the best conf tried.
        default = [r for r in runs if "(default)" in r["label"]][-1:] or runs[:1]
        best = min(runs, key=lambda r: r["wall"])
        for label, r in (
            (f"default conf ({default[0]['label']})", default[0]),
            (f"best: {best['label']}", best),
        ):
            if label.startswith("best") and r is default[0]:
                continue
            rows.append(
                (
                    f"Airflow overhead, {how}, {label}",
                    f"{r['wall']:.1f}s vs CLI {cli:.1f}s (+{r['wall'] - cli:.1f}s, {r['wall'] / cli:.2f}×)",
                    "reported",
                )
            )
    return rows


def _sources(engine: str) -> str:
    """The sources digest of an ``engine_version`` string (the whole string for old results)."""
    return engine.rsplit("(sources ", 1)[-1] if "(sources " in engine else engine


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    out: list[str] = []
    kind = "quick smoke run (`--quick`)" if results.get("quick") else "full run"
    out += [
        "# Benchmarks",
        "",
        f"Written by `benchmarks/run.py` ({kind}, {results['reps']} repetition(s), "
        f"{results.get('total_seconds', 0):.0f} s in all) on {results['stamp']}. Regenerate with "
        "`make bench` (or `.venv/bin/python -m benchmarks.run --help`); raw data goes to `.bench/`.",
        "",
        "Every tool uploads the same generated tree to a fresh prefix of a local SeaweedFS "
        "(`weed mini` on 127.0.0.1, sharing the machine with the clients). Runs alternate between "
        "tools, the order rotated each repetition. Each run is a subprocess: **wall** time, client "
        "**CPU** (user + system of the client's whole process tree, from `wait4`) and **peak RSS** "
        "(largest sum over the process tree, sampled at 20 Hz) are its medians over the verified "
        "runs. A run counts only if it exited 0 and the prefix then held exactly the tree's "
        "object count and bytes. **Ratios are to s5cmd in the same run**: the machine is shared "
        "and noisy, so they, not the absolute times, are the figures to compare.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| s3pput source | commit {m.get('engine', 'unknown')}"
        + (
            f" at the start, {m['engine_end']} at the end"
            + (
                " (the engine changed during the run)"
                if _sources(m["engine_end"]) != _sources(m["engine"])
                else ""
            )
            if m.get("engine_end") and m["engine_end"] != m.get("engine")
            else ""
        )
        + " |",
        f"| CPU | {m['cpu_model']}, {m['nproc']} cores (`nproc`) |",
        f"| RAM | {m['ram_bytes'] / 1024**3:.1f} GiB |",
        f"| OS | {m['os']} |",
        f"| Python | {m['python']} |",
        f"| S3 server | SeaweedFS `{m['seaweedfs']}` |",
        f"| load average at start / end | {' '.join(f'{x:.1f}' for x in m['loadavg_start'])} / "
        f"{' '.join(f'{x:.1f}' for x in m.get('loadavg_end', ()))} |",
    ]
    for name, tool in results.get("tools", {}).items():
        note = f" — {tool['note']}" if tool.get("note") else ""
        out.append(f"| {name} version | {tool['version']}{note} |")
    for note in results.get("notes", []):
        out.append(f"| skipped | {note} |")
    out.append("")

    rows = targets(results)
    if rows:
        out += ["## Targets of issue 4", "", "| target | s3pput measured | verdict |", "|---|---|---|"]
        out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        out.append("")

    trees = results.get("trees", {})
    out += ["## Results", ""]
    for workload in results.get("workloads", []):
        tree = trees.get("small" if workload == "update" else workload, {})
        what = f"{tree.get('files', 0):,} files, {tree.get('bytes', 0) / MIB:,.1f} MiB"
        out += [f"### {TITLES[workload]}: {what}", ""]
        if workload == "update":
            out += [
                "Each tool re-runs over the prefix it filled in (a), nothing changed: s3pput "
                "`--put update` (size + MD5 from the listing), `s5cmd sync` and `aws s3 sync` "
                "(size + modification time), `rclone copy --checksum` and the baseline's "
                "`--sync` (size + MD5). *objects rewritten* counts keys whose LastModified "
                "moved (0 is right).",
                "",
            ]
        out += workload_table(results, workload)
        out.append("")

    memory = results.get("memory", [])
    if memory:
        out += [
            "## Memory: s3pput dry run (`--dry-run --put stupid`)",
            "",
            "| files | wall s | CPU s | peak RSS MiB (tree) | largest process MiB | wrote nothing |",
            "|---:|---:|---:|---:|---:|---|",
        ]
        for r in memory:
            out.append(
                f"| {r['files']:,} | {r['wall']:.1f} | {r['cpu']:.1f} | {_mib(r['peak_rss_tree'])} | "
                f"{_mib(r['max_rss_process'])} | {'yes' if r['verified'] else 'NO'} |"
            )
        out.append("")

    settings = results.get("settings", [])
    if settings:
        s5 = [r["wall"] for r in settings if r["setting"] == "s5cmd" and r["verified"]]
        ref = _median(s5)
        out += [
            "## s3pput settings sweep (small tree, exploratory)",
            "",
            "One run per setting (or `--settings-reps`), s5cmd runs interleaved every few settings; "
            "ratios are to the median of those s5cmd runs.",
            "",
            "| setting | wall s | CPU s | peak RSS MiB | wall ×s5cmd | verified |",
            "|---|---:|---:|---:|---:|---|",
        ]
        by: dict[str, list[dict[str, Any]]] = {}
        for r in settings:
            by.setdefault(r["setting"], []).append(r)
        for label, runs in by.items():
            ok = [r for r in runs if r["verified"]]
            wall = _median([r["wall"] for r in ok])
            out.append(
                f"| {label} | {_s(wall)} | {_s(_median([r['cpu'] for r in ok]))} | "
                f"{_mib(_median([r['peak_rss_tree'] for r in ok]))} | {_x(_ratio(wall, ref))} | "
                f"{len(ok)}/{len(runs)} |"
            )
        best = min(
            (
                lbl
                for lbl in by
                if lbl != "s5cmd" and "--put" not in lbl and any(r["verified"] for r in by[lbl])
            ),
            key=lambda lbl: _median([r["wall"] for r in by[lbl] if r["verified"]]) or 1e9,
            default=None,
        )
        if best:
            out += [
                "",
                f"Fastest concurrency setting in this run: `{best}` (single runs: treat "
                "differences under ~20% as noise on this machine).",
            ]
        out.append("")

    airflow = results.get("airflow")
    if airflow:
        out += airflow_section(airflow)
    out += NOTES
    return "\n".join(out).rstrip() + "\n"


NOTES = [
    "## How each tool is run",
    "",
    "| tool | upload | update re-run |",
    "|---|---|---|",
    "| s3pput | `s3pput --bucket B --prefix P --endpoint-url URL --quiet SRC` (defaults: `--put update`) "
    "| the same command |",
    "| s5cmd | `s5cmd --endpoint-url URL cp 'SRC/*' s3://B/P/` | `s5cmd sync SRC/ s3://B/P/` |",
    "| aws-cli | `aws --endpoint-url URL s3 cp --recursive SRC s3://B/P/` | `aws s3 sync SRC s3://B/P/` |",
    "| rclone | `rclone copy --checksum --transfers 16 --checkers 16 SRC remote:B/P` | the same command |",
    "| boto3-threads | `benchmarks/boto3_upload.py SRC B P`: 16 threads, one client, `upload_file` "
    "| `... --sync`: one listing, skip on size + MD5 |",
    "",
    "Not measured: the server's CPU (SeaweedFS shares the 2 cores with every client, so a client "
    "that needs less CPU leaves more to the server). The trees are generated fresh for each run of "
    "the harness and sit in the page cache. Each workload starts with one unmeasured upload, "
    "because SeaweedFS grows its volumes on the first writes. To see where s3pput's own CPU goes, "
    "run `benchmarks/profile_s3pput.py` (per-thread CPU, and a py-spy profile when py-spy is "
    "installed).",
    "",
]


def airflow_section(airflow: dict[str, Any]) -> list[str]:
    out = ["## Airflow: the small tree through the example DAG `s3pput_upload`", ""]
    if airflow.get("error"):
        out += [f"Not measured: {airflow['error']}", ""]
    cli = airflow.get("cli_wall")
    out += [
        f"Bare CLI on the same tree (`s3pput`, default settings), same run: **{_s(cli)} s** "
        f"(runs: {' / '.join(f'{w:.2f}' for w in airflow.get('cli_walls', []))}). "
        f"`airflow db migrate` took {_s(airflow.get('migrate_seconds'), 1)} s (not counted).",
        "",
        "| how | conf | wall s | ×CLI | DAG run s | plan s | put tasks | put task s (min–max) | reduce s | verified |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for name, how in (
        ("dags_test", "`airflow dags test` (in-process, sequential)"),
        ("standalone", "scheduler + LocalExecutor (the `airflow standalone` components)"),
    ):
        for r in airflow.get(name, []):
            puts = r.get("put_durations") or []
            span = f"{min(puts):.1f}–{max(puts):.1f}" if puts else "–"
            out.append(
                f"| {how} | {r['label']} | {_s(r.get('wall'))} | {_x(_ratio(r.get('wall'), cli))} | "
                f"{_s(r.get('dag_run_seconds'))} | {_s(r.get('plan_seconds'))} | "
                f"{len(puts) or r.get('put_tasks') or '–'} | {span} | {_s(r.get('reduce_seconds'))} | "
                f"{'yes' if r.get('verified') else 'NO: ' + str(r.get('error', ''))} |"
            )
    if airflow.get("standalone_ready_seconds") is not None:
        out += [
            "",
            f"`airflow standalone` was ready (API, scheduler, DAG parsed) after "
            f"{airflow['standalone_ready_seconds']:.1f} s (not counted).",
        ]
    for line in airflow.get("notes", []):
        out += ["", line]
    out.append("")
    return out


def summary(results: dict[str, Any]) -> str:
    """A short plain-text version for the terminal."""
    lines = []
    for workload in results.get("workloads", []):
        lines.append(f"{TITLES[workload]}:")
        table = aggregate(results, workload)
        ref = table.get(REFERENCE, {}).get("wall")
        for name in tool_order(results):
            row = table.get(name)
            if row is None:
                continue
            lines.append(
                f"  {name:<14} wall {_s(row['wall']):>7}s  cpu {_s(row['cpu']):>7}s  rss {_mib(row['rss']):>5} MiB"
                f"  ×s5cmd {_x(_ratio(row['wall'], ref)):>6}  ok {len(row['ok'])}/{len(row['runs'])}"
            )
    for a, b, c in targets(results):
        lines.append(f"target {a}: {b} -> {c}")
    return "\n".join(lines)


# -- the far-S3 latency sweep (written by far.py, kept by run.py) ------------------------------

FAR_HEADING = "## Far S3: latency sweep"


def far_section(sweep: list[str]) -> str:
    """The sweep's section of BENCHMARKS.md, from ``far_report.render_sweep``'s lines."""
    body = sweep[1:] if sweep and sweep[0].startswith("## ") else sweep
    return (
        "\n".join(
            [
                FAR_HEADING,
                "",
                "Written by `python -m benchmarks.far` (one delay per command; each command rewrites "
                "this section from every raw file in `.bench/far/`, the newest for each delay and "
                "workload); the fault table and more detail are in `benchmarks/far-results.md`.",
                *body,
            ]
        ).rstrip("\n")
        + "\n"
    )


def _section_bounds(lines: list[str], heading: str) -> tuple[int, int] | None:
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == heading), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return start, end


def splice_far(document: str, section: str) -> str:
    """``document`` with its far-S3 section replaced by ``section`` (appended when it has none)."""
    lines = document.splitlines(keepends=True)
    bounds = _section_bounds(lines, FAR_HEADING)
    if bounds is None:
        return document.rstrip("\n") + "\n\n" + section if document.strip() else section
    start, end = bounds
    tail = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + tail if tail else "")


def extract_far(document: str) -> str | None:
    """The far-S3 section of ``document``, or ``None``: a full ``run.py`` keeps it as it was."""
    lines = document.splitlines(keepends=True)
    bounds = _section_bounds(lines, FAR_HEADING)
    if bounds is None:
        return None
    return "".join(lines[bounds[0] : bounds[1]]).rstrip("\n") + "\n"
