# ruff: noqa: RUF001 - the tables use the multiplication sign and the en dash on purpose
"""Turn the raw results of ``far.py`` and ``fault_table.py`` into ``benchmarks/far-results.md``.

Reads every ``sweep-*.json`` and ``faults-*.json`` in the raw directory (``.bench/far/``); for
each delay and workload the newest sweep file that holds it wins, and the newest fault file.
Only verified runs (exit 0, the right object count and bytes) enter a median; ratios are
between medians of the same command. Regenerate by hand with
``.venv/bin/python -m benchmarks.far --render``.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import subprocess
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
DIRECT = "s5cmd-direct"  # s5cmd without the proxy: no proxy figures of its own
TOOLS = ("s3pput", "s5cmd", "aws-cli", "rclone", DIRECT)
REFERENCE = "s5cmd"
TITLES = {
    "small": "small files, first upload",
    "update": "update re-run, unchanged",
    "large": "one large file",
    "mixed": "mixed tree",
}
#: issue 12's targets at 25 ms each way: s3pput / s5cmd at most
TARGETS = {"small": 1.0, "update": 1.0, "large": 1.1, "mixed": 1.0}
TARGET_DELAY = 25.0


def engine_version(repo: Path) -> str:
    """The commit under test, whether the engine's sources differ from it, and their digest (as
    ``run.py`` reports it: other engineers may change the sources while a run goes on)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    digest = hashlib.sha256()
    for path in sorted((repo / "airflow_s3pput").rglob("*.py")):
        digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes())
    dirty = " + uncommitted engine changes" if git("status", "--porcelain", "--", "airflow_s3pput") else ""
    return f"{git('rev-parse', '--short', 'HEAD') or 'unknown'}{dirty} (sources {digest.hexdigest()[:10]})"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _load(raw_dir: Path, pattern: str) -> list[dict[str, Any]]:
    found = []
    for path in sorted(raw_dir.glob(pattern)):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda r: str(r.get("stamp", "")))


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


# -- the sweep -------------------------------------------------------------------------------


def sweep_cells(raw_dir: Path) -> dict[tuple[float, str], dict[str, Any]]:
    """(delay, workload) -> the newest file's runs of it and that file's header."""
    cells: dict[tuple[float, str], dict[str, Any]] = {}
    for result in _load(raw_dir, "sweep-*.json"):
        for workload in result.get("workloads", []):
            runs = [r for r in result["runs"] if r["workload"] == workload]
            if runs:
                cells[(float(result["delay_ms"]), workload)] = {"header": result, "runs": runs}
    return cells


def _by_tool(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for run in runs:
        row = table.setdefault(run["tool"], {"runs": [], "ok": []})
        row["runs"].append(run)
        if run["verified"]:
            row["ok"].append(run)
    for row in table.values():
        ok = row["ok"]
        row["wall"] = _median([r["wall"] for r in ok])
        row["cpu"] = _median([r["cpu"] for r in ok])
        row["rss"] = max((r["peak_rss_tree"] for r in ok), default=None)
        row["max_open"] = max((r["proxy"]["max_open"] for r in row["runs"]), default=None)
        row["max_in_flight"] = max((r["proxy"]["max_in_flight"] for r in row["runs"]), default=None)
        row["failed"] = len(row["runs"]) - len(ok)
    return table


def _tools_in(cells: dict[tuple[float, str], dict[str, Any]]) -> list[str]:
    seen = {r["tool"] for cell in cells.values() for r in cell["runs"]}
    return [t for t in TOOLS if t in seen] + sorted(seen - set(TOOLS))


def render_sweep(raw_dir: Path) -> list[str]:
    cells = sweep_cells(raw_dir)
    if not cells:
        return ["## Latency sweep", "", "No sweep results yet: run `benchmarks/far.py`.", ""]
    tools = _tools_in(cells)
    headers = [cell["header"] for cell in cells.values()]
    out = [
        "## Latency sweep",
        "",
        "Every tool through the same loopback proxy in front of SeaweedFS (`latency_proxy.py`), "
        "which holds each chunk the given delay in each direction, and a new connection's first "
        "bytes one round trip more (a TCP handshake). Default settings for every tool "
        "(`tools.py`'s command lines). Median wall of the verified runs; ratio of medians, and the "
        "median of the per-repetition ratios (*paired*: the two tools ran minutes apart at most, "
        "so a burst of load on the shared machine hits both).",
        "",
        "| delay each way | workload | files | reps | " + " | ".join(tools) + " | s3pput / s5cmd | paired |",
        "|---|---|---:|---:|" + "---:|" * len(tools) + "---:|---:|",
    ]
    for (delay, workload), cell in sorted(cells.items(), key=lambda kv: (kv[0][0], _order(kv[0][1]))):
        header, rows = cell["header"], _by_tool(cell["runs"])
        files = cell["runs"][0]["expected_objects"]
        reps = header.get("reps", "?")
        values = []
        for tool in tools:
            row = rows.get(tool)
            if row is None:
                values.append("–")
                continue
            text = _seconds(row["wall"])
            if row["failed"]:
                text += f" ({row['failed']} of {len(row['runs'])} failed)"
            values.append(text)
        ratio = _ratio(rows, "wall")
        mark = ""
        if delay == TARGET_DELAY and ratio is not None:
            mark = " ✓" if round(ratio, 2) <= TARGETS[workload] else f" ✗ (target ≤ {TARGETS[workload]:.1f}×)"
        out.append(
            f"| {delay:g} ms | {TITLES[workload]} | {files:,} | {reps} | "
            + " | ".join(values)
            + f" | **{_x(ratio)}**{mark} | {_x(_paired(cell['runs']))} |"
        )
    far = sorted({h["delay_ms"] for h in headers if h["delay_ms"] >= 100})
    if far:
        out += [
            "",
            "At "
            + ", ".join(f"{d:g} ms" for d in far)
            + " the small-file and update workloads use fewer files and fewer repetitions (columns "
            "files and reps) to keep one command under ten minutes; the large and mixed trees are the "
            "same as elsewhere.",
        ]
    out += ["", *render_resources(cells, tools), "", *render_startup(cells, tools)]
    out += ["", *render_update(cells, tools), "", *render_sources(headers)]
    return out


def _order(workload: str) -> int:
    return list(TITLES).index(workload) if workload in TITLES else len(TITLES)


def _paired(runs: list[dict[str, Any]]) -> float | None:
    """The median over repetitions of s3pput's wall / s5cmd's wall in the same repetition."""
    walls: dict[tuple[int, str], float] = {(r["rep"], r["tool"]): r["wall"] for r in runs if r["verified"]}
    ratios = [
        walls[(rep, "s3pput")] / walls[(rep, REFERENCE)]
        for rep in sorted({rep for rep, _ in walls})
        if (rep, "s3pput") in walls and walls.get((rep, REFERENCE))
    ]
    return _median(ratios)


def _ratio(rows: dict[str, dict[str, Any]], key: str) -> float | None:
    ours, ref = rows.get("s3pput", {}).get(key), rows.get(REFERENCE, {}).get(key)
    return None if ours is None or not ref else float(ours) / float(ref)


def render_resources(cells: dict[tuple[float, str], dict[str, Any]], tools: list[str]) -> list[str]:
    out = [
        "### Connections, CPU and memory",
        "",
        "Per tool: the most connections it held open to the proxy at once / the most requests in "
        "flight at once (largest over the repetitions); median CPU seconds of its process tree; "
        "largest peak RSS of its process tree.",
        "",
        "| delay | workload | " + " | ".join(tools) + " |",
        "|---|---|" + "---|" * len(tools),
    ]
    for (delay, workload), cell in sorted(cells.items(), key=lambda kv: (kv[0][0], _order(kv[0][1]))):
        rows = _by_tool(cell["runs"])
        values = []
        for tool in tools:
            row = rows.get(tool)
            if row is None:
                values.append("–")
                continue
            rss = "–" if row["rss"] is None else f"{row['rss'] / MIB:.0f} MiB"
            cpu = "–" if row["cpu"] is None else f"{row['cpu']:.1f} s"
            values.append(f"{row['max_open']} / {row['max_in_flight']} conns; {cpu} cpu; {rss}")
        out.append(f"| {delay:g} ms | {workload} | " + " | ".join(values) + " |")
    return out


def render_startup(cells: dict[tuple[float, str], dict[str, Any]], tools: list[str]) -> list[str]:
    out = [
        "### Where a small-file upload's time goes",
        "",
        "Medians over the repetitions of the small-file first upload. *local start*: spawn to the "
        "first connection (interpreter, imports, walk); *to first upload*: first connection to the "
        "first PUT of a file; *serial*: how many of the requests before it ran one after the other "
        "(each costs a round trip); *transfer*: first upload to the last answer; *exit*: last answer "
        "to the process's exit; *proxy cpu*: CPU time of the proxy's thread during the run (near the "
        "wall, the proxy would be the bottleneck). Times in ms.",
        "",
        "| delay | tool | wall | local start | to first upload | serial before | transfer | exit "
        "| proxy cpu | requests before the first upload |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for (delay, workload), cell in sorted(cells.items()):
        if workload != "small":
            continue
        for tool in (t for t in tools if t != DIRECT):
            runs = [r for r in cell["runs"] if r["tool"] == tool and r["verified"]]
            if not runs:
                continue
            px = [r["proxy"] for r in runs]
            local = _median(
                [p["spawn_to_first_connection_ms"] for p in px if p["spawn_to_first_connection_ms"]]
            )
            first = _median([p["first_upload_ms"] for p in px if p["first_upload_ms"] is not None])
            serial = _median([p["serial_before_first_upload"] for p in px])
            tail = _median(
                [p["last_answer_to_exit_ms"] for p in px if p["last_answer_to_exit_ms"] is not None]
            )
            wall = _median([r["wall"] * 1000 for r in runs])
            transfer = None
            if None not in (wall, local, first, tail):
                assert wall is not None and local is not None and first is not None and tail is not None
                transfer = wall - local - first - tail
            before = _shapes(px[0]["before_first_upload"])
            proxy_cpu = _median([p.get("proxy_cpu_seconds", 0.0) * 1000 for p in px])
            out.append(
                f"| {delay:g} ms | {tool} | {_ms(wall)} | {_ms(local)} | {_ms(first)} | "
                f"{'–' if serial is None else f'{serial:g}'} | {_ms(transfer)} | {_ms(tail)} | "
                f"{_ms(proxy_cpu)} | {before} |"
            )
    return out


def _shapes(requests: list[str]) -> str:
    """The request shapes in order, a run of the same shape counted once (``GET /b?uploads x2``)."""
    counted: list[list[Any]] = []
    for shape in requests:
        if counted and counted[-1][0] == shape:
            counted[-1][1] += 1
        else:
            counted.append([shape, 1])
    text = ", ".join(f"`{s}`" + (f" ×{n}" if n > 1 else "") for s, n in counted)
    return text or "none"


def render_update(cells: dict[tuple[float, str], dict[str, Any]], tools: list[str]) -> list[str]:
    out = [
        "### The update re-run, request by request",
        "",
        "Medians over the repetitions: requests sent, listing requests among them, the longest "
        "chain of requests that ran one after the other (a lower bound on the round trips the run "
        "waited for in sequence), and the objects written again (must be 0).",
        "",
        "| delay | tool | wall | requests | by method | listings | serial chain | rewritten |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for (delay, workload), cell in sorted(cells.items()):
        if workload != "update":
            continue
        for tool in (t for t in tools if t != DIRECT):
            runs = [r for r in cell["runs"] if r["tool"] == tool and r["verified"]]
            if not runs:
                continue
            px = [r["proxy"] for r in runs]
            methods = ", ".join(f"{m} {n}" for m, n in px[0]["methods"].items()) or "none"
            out.append(
                f"| {delay:g} ms | {tool} | {_seconds(_median([r['wall'] for r in runs]))} | "
                f"{_ms(_median([p['requests'] for p in px]))} | {methods} | "
                f"{_ms(_median([p['lists'] for p in px]))} | {_ms(_median([p['serial_all'] for p in px]))} | "
                f"{_ms(_median([r.get('rewritten', 0) for r in runs]))} |"
            )
    return out


def render_sources(headers: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, dict[str, Any]] = {}
    for header in headers:
        seen[f"{header['stamp']} {header['delay_ms']:g}"] = header
    out = ["### Runs", "", "| command | delay | engine | load average | seconds |", "|---|---|---|---|---:|"]
    tools: dict[str, str] = {}
    notes: set[str] = set()
    for header in sorted(seen.values(), key=lambda h: (h["delay_ms"], h["stamp"])):
        load = ", ".join(f"{v:.1f}" for v in header.get("loadavg", []))
        out.append(
            f"| {header['stamp']}{' (quick)' if header.get('quick') else ''} | {header['delay_ms']:g} ms | "
            f"{header.get('engine', '?')} | {load} | {header.get('seconds', 0):.0f} |"
        )
        tools.update(header.get("tools", {}))
        notes.update(header.get("notes", []))
    out += ["", "Tools: " + "; ".join(f"{name} `{version}`" for name, version in tools.items()) + "."]
    out += [f"Note: {note}." for note in sorted(notes)]
    return out


# -- the fault table -------------------------------------------------------------------------


def _newest_cases(results: list[dict[str, Any]], part: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The cases of ``part`` ("transient" or "down"), the newest file winning for each fault and
    transport (``--cases`` and ``--transports`` may have run them apart), and those files' stamps."""
    cases: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {}
    for result in results:  # oldest first
        for case in result.get(part, []):
            if part == "transient" and not case["runs"]:
                continue
            cases[(case["fault"], case["transport"])] = (case, result)
    chosen = [case for case, _ in cases.values()]
    used = {result["stamp"]: result for _, result in cases.values()}
    stamps = [
        f"{stamp}{' (quick)' if r.get('quick') else ''}, engine {r.get('engine', '?')}"
        for stamp, r in sorted(used.items())
    ]
    return chosen, stamps


def render_faults(raw_dir: Path) -> list[str]:
    results = _load(raw_dir, "faults-*.json")
    if not results:
        return ["## Transient faults", "", "No fault results yet: run `benchmarks/fault_table.py`.", ""]
    transient, transient_from = _newest_cases(results, "transient")
    down, down_from = _newest_cases(results, "down")
    files = next((r["files"] for r in reversed(results)), "?")
    out = [
        "## Transient faults",
        "",
        f"{files} small files through `tests/faults/proxy.py`'s `FaultProxy`, s3pput with its default "
        "settings (only `--transport` chosen), a fresh prefix and a new fault seed per run. Commands: "
        + ("; ".join(transient_from) or "none")
        + ".",
        "",
        "| fault | transport | files failed per run | runs with 0 failed | lost | wall per run | exit codes |"
        " faults fired per run | PUT attempts per file |",
        "|---|---|---|---:|---:|---|---|---|---|",
    ]
    for case in transient:
        runs = case["runs"]
        failed = ", ".join(str(r["failed"]) for r in runs)
        clean = sum(1 for r in runs if r["failed"] == 0 and r["exit"] == 0 and r["lost"] == 0)
        walls = ", ".join(f"{r['wall']:.1f}" for r in runs)
        exits = ", ".join(str(r["exit"]) for r in runs)
        fired = ", ".join(str(r["faults_fired"]) for r in runs)
        attempts = ", ".join(f"{r['puts'] / r['files']:.2f}" for r in runs)
        out.append(
            f"| {case['fault']} | {case['transport']} | {failed} | **{clean} of {len(runs)}** | "
            f"{sum(r['lost'] for r in runs)} | {walls} s | {exits} | {fired} | {attempts} |"
        )
    out += [
        "",
        "*lost*: files neither stored nor reported failed (must be 0). The target is 0 files failed "
        "in 3 of 3 runs for each case.",
        "",
        "### A server that stays down",
        "",
        "Commands: " + ("; ".join(down_from) or "none") + ".",
        "",
        "| fault | transport | wall to give up | exit | files listed as failed | stored | failed but stored "
        "| lost | PUT attempts per file |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in down:
        per_file = case["puts"] / case["files"] if case["files"] else 0.0
        both = case.get("failed_but_stored", "–")
        wall = f"{case['wall']:.1f} s" + (" (killed: not over yet)" if case.get("timed_out") else "")
        # exit 2: the bucket check failed, so nothing was tried (the message says why)
        lost = "– (nothing tried)" if case["exit"] == 2 and not case["failed"] else case["lost"]
        if case.get("extra"):
            wall += f" (with `{' '.join(case['extra'])}`)"
        out.append(
            f"| {case['fault']} | {case['transport']} | {wall} | {case['exit']} | "
            f"{case['failed']} of {case['files']} | {case['stored']} | {both} | "
            f"{lost} | {per_file:.2f} |"
        )
        if case.get("message"):
            out.append(f"| | | | | {case['message']} | | | | |")
    out += [
        "",
        "*failed but stored*: the server stored the file but its answer was lost (the proxy shut the "
        "connection): reported failed, which is the safe side. *lost* counts files neither stored nor "
        "listed as failed. *PUT attempts per file*: PUT requests the proxy saw, divided by the files.",
        "",
        "Target: exit 1, every file not stored listed as failed, in bounded time.",
    ]
    return out


# -- the file --------------------------------------------------------------------------------


def render(raw_dir: Path) -> str:
    lines = [
        "# Far S3: latency sweep and transient faults",
        "",
        "Generated by `benchmarks/far.py` and `benchmarks/fault_table.py` from the raw files in "
        f"`{raw_dir}`; do not edit, do not commit. The machine is shared (2 cores): absolute times "
        "are noisy, the ratios within one command are what counts.",
        "",
        *render_sweep(raw_dir),
        "",
        *render_faults(raw_dir),
        "",
    ]
    return "\n".join(lines)


def write(raw_dir: Path, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(raw_dir))
