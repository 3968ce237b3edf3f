"""Tests of the far-S3 harness: the delaying proxy, and smoke runs of ``far.py`` and ``fault_table.py``.

Not collected by the default suite (``testpaths = tests``); run them with
``.venv/bin/python -m pytest benchmarks/test_far.py``. No assertion on a speed: the proxy's
delay is checked as a lower bound (a loaded machine can only make a request slower).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server
from benchmarks import report
from benchmarks.latency_proxy import LatencyProxy, _MessageStream

HERE = Path(__file__).resolve().parent


BUCKET = "farbucket"


def _requests(stream: bytes, step: int) -> list[tuple[str, int]]:
    """Feed ``stream`` ``step`` bytes at a time; return (request line, events) per message."""
    seen: list[tuple[str, int]] = []

    def head(data: bytes) -> tuple[str, int]:
        lines = data.decode().split("\r\n")
        seen.append((lines[0], 0))
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if headers.get("transfer-encoding") == "chunked":
            return ("chunked", 0)
        return ("length", int(headers.get("content-length", "0")))

    def end() -> None:
        line, _ = seen[-1]
        seen[-1] = (line, 1)

    parser = _MessageStream(head, end)
    for i in range(0, len(stream), step):
        parser.feed(stream[i : i + step])
    assert not parser.broken
    return seen


MESSAGES = (
    b"PUT /b/k1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    b"GET /b?list-type=2 HTTP/1.1\r\nHost: x\r\n\r\n"
    b"PUT /b/k2 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\n"
    b"x-amz-checksum-crc32: AAAA\r\n\r\n"
    b"HEAD /b HTTP/1.1\r\n\r\n"
)


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, len(MESSAGES)])
def test_message_stream_finds_every_request_whatever_the_chunking(step: int) -> None:
    assert _requests(MESSAGES, step) == [
        ("PUT /b/k1 HTTP/1.1", 1),
        ("GET /b?list-type=2 HTTP/1.1", 1),
        ("PUT /b/k2 HTTP/1.1", 1),
        ("HEAD /b HTTP/1.1", 1),
    ]


def test_message_stream_gives_up_on_garbage_without_raising() -> None:
    parser = _MessageStream(lambda head: ("length", int("not a number")), lambda: None)
    parser.feed(b"PUT / HTTP/1.1\r\n\r\n")
    assert parser.broken
    parser.feed(b"more bytes are ignored")


@pytest.fixture(scope="module")
def s3() -> Iterator[LocalS3Server]:
    with LocalS3Server(bucket=BUCKET) as server:
        yield server


def _client(s3: LocalS3Server, endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def test_proxy_relays_s3_requests_and_holds_each_round_trip(s3: LocalS3Server) -> None:
    delay_ms = 40
    body = bytes(range(256)) * 4096 * 3  # 3 MiB: several chunks each way
    with LatencyProxy(("127.0.0.1", s3.port), delay_ms=delay_ms) as proxy:
        client = _client(s3, proxy.endpoint_url)
        client.head_bucket(Bucket=BUCKET)  # opens the connection (one round trip more)
        proxy.reset_stats()
        started = time.monotonic()
        client.put_object(Bucket=BUCKET, Key="far/blob", Body=body)
        put_seconds = time.monotonic() - started
        assert client.get_object(Bucket=BUCKET, Key="far/blob")["Body"].read() == body
        client.head_object(Bucket=BUCKET, Key="far/blob")
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix="far/")
        stats = proxy.stats()
    assert [obj["Key"] for obj in listed["Contents"]] == ["far/blob"]
    assert put_seconds >= 2 * delay_ms / 1000  # a round trip is two delays
    assert [(r.method, r.status) for r in stats.requests] == [
        ("PUT", 200),
        ("GET", 200),
        ("HEAD", 200),
        ("GET", 200),
    ]
    for record in stats.requests:
        assert record.answered is not None and record.answered - record.sent >= 2 * delay_ms / 1000
    assert stats.connections == 0  # the kept-alive connection was opened before the reset
    assert stats.max_open == 1 and stats.max_in_flight == 1 and stats.unparsed == 0
    assert stats.bytes_up > len(body) and stats.bytes_down > len(body)
    assert stats.serial_chain(stats.requests) == 4


def test_proxy_counts_concurrent_connections_and_stops_with_them_open(s3: LocalS3Server) -> None:
    import threading

    proxy = LatencyProxy(("127.0.0.1", s3.port), delay_ms=20).start()
    clients = [_client(s3, proxy.endpoint_url) for _ in range(5)]
    barrier = threading.Barrier(5)

    def put(i: int) -> None:
        barrier.wait()
        clients[i].put_object(Bucket=BUCKET, Key=f"conc/{i}", Body=b"x" * 1000)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    stats = proxy.stats()
    started = time.monotonic()
    proxy.stop()  # five keep-alive connections still open
    assert time.monotonic() - started < 5
    assert stats.connections == 5 and stats.max_open == 5
    assert [r.status for r in stats.requests] == [200] * 5
    assert 1 <= stats.max_in_flight <= 5


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=400, check=False, cwd=HERE.parent
    )


def test_far_quick_has_a_verified_row_per_tool_and_workload(tmp_path: Path) -> None:
    output = tmp_path / "far.md"
    done = _run(
        [
            "-m",
            "benchmarks.far",
            "--quick",
            "--tools",
            "s3pput,s5cmd",
            "--raw-dir",
            str(tmp_path),
            "--output",
            str(output),
        ]
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [raw] = list(tmp_path.glob("sweep-25ms-*.json"))
    results = json.loads(raw.read_text())
    assert results["workloads"] == ["small", "update", "large", "mixed"]
    for workload in results["workloads"]:
        runs = {r["tool"]: r for r in results["runs"] if r["workload"] == workload}
        assert set(runs) == {"s3pput", "s5cmd"}, workload
        for run in runs.values():
            assert run["verified"], run
            assert run["proxy"]["max_open"] >= 1 and run["proxy"]["requests"] >= 1
            if workload == "update":
                assert run["rewritten"] == 0
    small = next(r for r in results["runs"] if r["workload"] == "small" and r["tool"] == "s3pput")
    assert small["proxy"]["first_upload_ms"] is not None
    text = output.read_text()
    assert "| 25 ms | small files, first upload | 50 | 1 |" in text
    assert text.count("s3pput / s5cmd") == 1
    # the sweep goes into (a quick run's copy of) BENCHMARKS.md, beside the rest of the document
    repo_doc = (HERE.parent / "BENCHMARKS.md").read_text()
    copy = (tmp_path / "BENCHMARKS.md").read_text()
    assert report.extract_far(repo_doc) != report.extract_far(copy)  # the repository's is untouched
    section = report.extract_far(copy) or ""
    assert "| 25 ms | small files, first upload | 50 | 1 |" in section
    assert "| 25 ms | update re-run, unchanged | 50 | 1 |" in section
    assert copy.count(report.FAR_HEADING) == 1 and "## Machine" in copy


def test_far_section_is_replaced_in_place_and_kept_by_a_full_run() -> None:
    document = "# Benchmarks\n\n## Results\n\nold\n\n## Scale\n\nscale\n"
    first = report.splice_far(document, report.far_section(["## Latency sweep", "", "| a |"]))
    assert first.index(report.FAR_HEADING) > first.index("## Scale")  # none yet: appended
    assert "| a |" in first and "## Scale\n\nscale" in first
    moved = first.replace("## Scale\n\nscale\n\n", "") + "\n## Tail\n\nt\n"
    second = report.splice_far(moved, report.far_section(["## Latency sweep", "", "| b |"]))
    assert "| a |" not in second and "| b |" in second and second.endswith("## Tail\n\nt\n")
    # run.py renders a new document and keeps the section the previous one had
    fresh = report.splice_far("# Benchmarks\n", report.extract_far(second) or "")
    assert report.extract_far(fresh) == report.extract_far(second)


def test_fault_table_quick_accounts_for_every_file(tmp_path: Path) -> None:
    output = tmp_path / "far.md"
    done = _run(
        ["-m", "benchmarks.fault_table", "--quick", "--raw-dir", str(tmp_path), "--output", str(output)]
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [raw] = list(tmp_path.glob("faults-*.json"))
    results = json.loads(raw.read_text())
    assert [c["fault"] for c in results["transient"]] == ["reset, 30% of PUTs", "503 SlowDown, 40% of PUTs"]
    for case in results["transient"]:
        for run in case["runs"]:
            assert run["lost"] == 0 and run["faults_fired"] > 0
            assert run["exit"] == (1 if run["failed"] else 0)
    every_put = next(c for c in results["down"] if c["fault"] == "503 SlowDown on every PUT")
    assert every_put["exit"] == 1 and every_put["failed"] == every_put["files"] and every_put["stored"] == 0
    assert "## Transient faults" in output.read_text()
