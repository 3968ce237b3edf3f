"""Memory stays flat however many files SOURCE holds: a dry run over 200,000 files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server

S3PPUT = str(Path(sys.executable).parent / "s3pput")
LIMIT_MB = 300


def make_empty_files(root: Path, dirs: int, per_dir: int) -> None:
    # Hard links to one empty file per directory: several times faster to create than new
    # files, and each name is still a regular file to the walker.
    for i in range(dirs):
        sub = root / f"d{i:03}"
        sub.mkdir()
        first = sub / "f0000.txt"
        first.touch()
        for j in range(1, per_dir):
            os.link(first, sub / f"f{j:04}.txt")


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of the descendants of ``pid`` (s3pput and its worker processes)."""
    total, todo, first = 0, [pid], True
    while todo:
        current = todo.pop()
        try:
            if not first:
                with open(f"/proc/{current}/status") as f:
                    total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
            first = False
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


# A wrapper process runs s3pput, so its RUSAGE_CHILDREN peak is s3pput's alone.
WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "sys.stderr.write('MAXRSS %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def dry_run(server: LocalS3Server, bucket: str, src: Path) -> tuple[dict[str, Any], int, int]:
    """Run a dry run as a user would; return its summary, the biggest process and the total peak."""
    env = dict(os.environ, **server.env())
    argv = [S3PPUT, "--dry-run", "--put", "stupid", "--quiet", "--json", "--processes", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, *argv, "--bucket", bucket, str(src)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak_tree_kb = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_tree_kb
        while not stop.is_set():
            peak_tree_kb = max(peak_tree_kb, _tree_rss_kb(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=150)
    finally:
        stop.set()
        sampler.join()
    assert proc.returncode == 0, err
    maxrss_kb = int(err.rsplit("MAXRSS ", 1)[1].split()[0])
    summary: dict[str, Any] = json.loads(out)
    return summary, maxrss_kb, peak_tree_kb


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_dry_run_over_200k_files_stays_small(s3_server: LocalS3Server, bucket: str, tmp_path: Path) -> None:
    few, many = tmp_path / "few", tmp_path / "many"
    few.mkdir()
    many.mkdir()
    try:
        make_empty_files(few, 2, 1000)
        make_empty_files(many, 200, 1000)
        _, few_maxrss, _ = dry_run(s3_server, bucket, few)
        summary, maxrss, tree = dry_run(s3_server, bucket, many)
    finally:
        shutil.rmtree(many, ignore_errors=True)
    assert summary["files_would_put"] == 200_000
    assert summary["files_failed"] == 0
    assert summary["dry_run"] is True
    # All of s3pput's processes together, at their peak, and the biggest one alone.
    assert tree < LIMIT_MB * 1024, tree
    assert maxrss < LIMIT_MB * 1024 / 2, maxrss
    # Flat: a hundred times the files costs (next to) no more memory.
    assert maxrss - few_maxrss < 30 * 1024, (few_maxrss, maxrss)


def upload_peak_kb(server: LocalS3Server, bucket: str, src: Path, transport: str) -> int:
    """Peak RSS of one real ``s3pput`` upload (one process)."""
    env = dict(os.environ, **server.env())
    argv = [S3PPUT, "--quiet", "--json", "--transport", transport, "--processes", "1"]
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *argv, "--bucket", bucket, str(src)],
        env=env, capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files_put"] == 17
    return int(proc.stderr.rsplit("MAXRSS ", 1)[1].split()[0])


#: what single-PUT bodies in flight may add to a process at rest (the README's bound), with room
#: for the allocator's slack
BODIES_LIMIT_MB = 64 + 8


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("transport", ["crt", "boto3"])
def test_single_put_bodies_in_flight_stay_within_the_readme_bound(
    s3_server: LocalS3Server, bucket: str, tmp_path: Path, transport: str
) -> None:
    """17 files just under the multipart threshold: their bodies are held while in flight, at
    most 64 MiB of memory for them whatever the thread count (a list of 16 once held 528 MiB)."""
    tiny, large = tmp_path / "tiny", tmp_path / "large"
    tiny.mkdir()
    large.mkdir()
    body = os.urandom(15 * 1024 * 1024 + 512 * 1024)
    for i in range(17):
        (tiny / f"f{i:02}.bin").write_bytes(b"x")
        (large / f"f{i:02}.bin").write_bytes(body)
    at_rest_kb = upload_peak_kb(s3_server, bucket, tiny, transport)
    peak_kb = upload_peak_kb(s3_server, bucket, large, transport)
    assert peak_kb - at_rest_kb < BODIES_LIMIT_MB * 1024, (at_rest_kb // 1024, peak_kb // 1024)
