"""Faults between s3pput and a real SeaweedFS: nothing lost, nothing corrupted, every failure counted.

Each scenario uploads the same tree (small files and two multipart-sized ones) through the
``FaultProxy`` with a fault installed, for the CRT data plane and for boto3 where the fault hits
single PUTs, then checks the outcome file by file against the server (not through the proxy):

- the run ends (pytest-timeout bounds it) with exit 1 when anything failed, 0 only when all landed;
- every file is stored intact (MD5 of the stored bytes) or reported failed: none silently missing,
  none stored corrupted, nothing stored that is not ours;
- no multipart upload is left open;
- a second ``update`` run without the fault puts exactly what was missing, and then all match.

The outcome of every scenario goes into a table printed at the end of the session.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.bucket_check import WRITE_CHECK
from airflow_s3pput.cli import main
from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.helpers import list_keys

from .proxy import FAULTS_BUCKET, Fault, FaultProxy, Request

MIB = 1024 * 1024
SMALL_FILES = 24
#: short timeouts and few retries keep each scenario to seconds
FAST = ["--retries", "2", "--connect-timeout", "1", "--read-timeout", "2"]
MULTIPART = ["--multipart-threshold", "5MiB", "--part-size", "5MiB"]
TRANSPORTS = ["crt", "boto3"]


@dataclass
class Outcome:
    fault: str
    transport: str
    files: int
    landed: int
    failed: int
    lost: int
    corrupted: int
    exit: int
    second_put: int = -1


_OUTCOMES: list[Outcome] = []


@pytest.fixture(scope="session", autouse=True)
def _print_outcomes(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not _OUTCOMES:
        return
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["", "fault scenarios: fault | transport | files | landed | failed | lost | corrupted | exit"]
    lines += [
        f"  {o.fault} | {o.transport} | {o.files} | {o.landed} | {o.failed} | {o.lost} | {o.corrupted} | "
        f"{o.exit} (rerun put {o.second_put})"
        for o in _OUTCOMES
    ]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            for line in lines:
                reporter.write_line(line)


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Relative path -> bytes: small files of assorted sizes (one empty) and two multipart ones."""
    rng = random.Random(5)
    files = {
        f"small/f{i:03d}.bin": rng.randbytes(rng.choice([0, 1, 700, 5000, 40_000]))
        for i in range(SMALL_FILES)
    }
    files["small/f000.bin"] = b""
    files["big/a.bin"] = rng.randbytes(11 * MIB)
    files["big/b.bin"] = rng.randbytes(6 * MIB)
    return files


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory, tree: dict[str, bytes]) -> Path:
    root = tmp_path_factory.mktemp("fault-tree")
    for rel, body in tree.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    return root


@pytest.fixture
def env(s3_server: LocalS3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@dataclass
class Run:
    exit: int
    summary: dict[str, Any]
    failed_keys: set[str]
    stderr: str


def run(endpoint: str, source: Path, prefix: str, transport: str, *extra: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    argv = [
        "--bucket", FAULTS_BUCKET, "--prefix", prefix, "--endpoint-url", endpoint,
        "--transport", transport, "--json", "--quiet", *FAST, *MULTIPART, *extra, str(source),
    ]  # fmt: skip
    code = main(argv, out, err)
    failed = set()
    for line in err.getvalue().splitlines():
        if line.startswith("s3pput: failed ") and " -> " in line:
            failed.add(line.split(" -> ", 1)[1].split(": ", 1)[0])
    summary = json.loads(out.getvalue()) if out.getvalue().strip() else {}
    return Run(code, summary, failed, err.getvalue())


def stored_state(client: Any, prefix: str, tree: dict[str, bytes]) -> tuple[set[str], set[str], set[str]]:
    """(intact keys, corrupted keys, foreign keys) under ``prefix``, read from the server."""
    expected = {prefix + rel: hashlib.md5(body).hexdigest() for rel, body in tree.items()}
    intact, corrupted, foreign = set(), set(), set()
    for key in list_keys(client, FAULTS_BUCKET, prefix):
        if key not in expected:
            foreign.add(key)
            continue
        body = client.get_object(Bucket=FAULTS_BUCKET, Key=key)["Body"].read()
        (intact if hashlib.md5(body).hexdigest() == expected[key] else corrupted).add(key)
    return intact, corrupted, foreign


def open_uploads(client: Any, prefix: str) -> list[str]:
    response = client.list_multipart_uploads(Bucket=FAULTS_BUCKET, Prefix=prefix)
    return [u["Key"] for u in response.get("Uploads", [])]


def check_run(
    client: Any, first: Run, prefix: str, tree: dict[str, bytes], fault: str, transport: str,
    *, unreachable: bool = False,
) -> tuple[Outcome, set[str]]:  # fmt: skip
    """The invariants of a faulted run; returns its outcome and the keys still missing.

    When the server was ``unreachable`` at the end, the abort of a failed multipart upload (or
    of the write check's) could not be sent: such leftovers must belong to failed files or be
    the check's, and the next run aborts them (``finish_and_check``).
    """
    keys = {prefix + rel for rel in tree}
    intact, corrupted, foreign = stored_state(client, prefix, tree)
    lost = keys - intact - first.failed_keys
    outcome = Outcome(fault, transport, len(tree), len(intact), len(first.failed_keys), len(lost),
                      len(corrupted), first.exit)  # fmt: skip
    _OUTCOMES.append(outcome)
    assert first.exit in (0, 1), first.stderr
    assert not lost, f"silently missing: {sorted(lost)}"
    assert not corrupted, f"stored corrupted: {sorted(corrupted)}"
    assert not foreign, f"unexpected objects: {sorted(foreign)}"
    assert first.summary["files_failed"] == len(first.failed_keys)
    assert first.summary["files_put"] + first.summary["files_failed"] == len(tree)
    assert first.exit == (1 if first.failed_keys else 0)
    if unreachable:
        left = {key for key in open_uploads(client, prefix) if not key.startswith(prefix + WRITE_CHECK)}
        assert left <= first.failed_keys
    else:
        assert open_uploads(client, prefix) == []
    return outcome, keys - intact


def finish_and_check(
    client: Any, endpoint: str, source: Path, prefix: str, tree: dict[str, bytes], transport: str,
    outcome: Outcome, missing: set[str],
) -> None:  # fmt: skip
    """A second run without the fault puts exactly the missing files, and then all match."""
    second = run(endpoint, source, prefix, transport)
    outcome.second_put = second.summary.get("files_put", -1)
    assert second.exit == 0, second.stderr
    assert second.summary["files_put"] == len(missing)
    assert second.summary["files_skipped"] == len(tree) - len(missing)
    intact, corrupted, foreign = stored_state(client, prefix, tree)
    assert intact == {prefix + rel for rel in tree} and not corrupted and not foreign
    assert open_uploads(client, prefix) == []


@pytest.fixture
def prefix() -> str:
    return f"f-{uuid.uuid4().hex[:10]}/"


def then_call(after: int, action: Callable[[], None], method: str = "PUT") -> Fault:
    """A rule that lets everything pass and runs ``action`` (on its own thread) at request ``after``."""
    seen = [0]

    def spy(request: Request) -> bool:
        if request.method == method:
            seen[0] += 1
            if seen[0] == after:
                threading.Thread(target=action, daemon=True).start()
        return False

    return Fault("pass", match=spy)


# Each scenario: (name, rules, transports, extra CLI arguments). Rules hit object PUTs (and
# parts) but not the bucket checks, which have their own test: a fault there is a usage error
# (exit 2) before any upload.
Scenario = tuple[str, Callable[[], list[Fault]], list[str], list[str]]
SCENARIOS: list[Scenario] = [
    (
        "reset mid-request, 30% of PUTs",
        lambda: [Fault("reset", method="PUT", fraction=0.3, seed=1)],
        TRANSPORTS,
        [],
    ),
    (
        "reset after the server stored it, 30% of PUTs",
        lambda: [Fault("reset", method="PUT", forward=True, fraction=0.3, seed=2)],
        TRANSPORTS,
        [],
    ),
    (
        "503 SlowDown, 40% of PUTs",
        lambda: [Fault("error", status=503, method="PUT", fraction=0.4, seed=3)],
        TRANSPORTS,
        [],
    ),
    (
        "500 InternalError on every part and complete",
        lambda: [
            Fault("error", status=500, method="PUT", query="partNumber"),
            Fault("error", status=500, method="POST", query="uploadId"),
        ],
        TRANSPORTS,
        ["--retries", "1"],
    ),
    ("503 on every PUT", lambda: [Fault("error", status=503, method="PUT")], TRANSPORTS, ["--retries", "1"]),
    (
        "one byte flipped, 20% of PUT and part bodies",
        lambda: [Fault("corrupt", method="PUT", fraction=0.2, seed=6)],
        TRANSPORTS,
        [],
    ),
    (
        "truncated responses, 30% of PUTs",
        lambda: [Fault("truncate", method="PUT", fraction=0.3, seed=4)],
        TRANSPORTS,
        [],
    ),
    (
        "delay 3 s past the read timeout, 6 PUTs",
        lambda: [Fault("delay", method="PUT", seconds=3, every=4, count=6)],
        TRANSPORTS,
        [],
    ),
    (
        "blackhole: 3 small files and part 2 of a.bin",
        lambda: [
            Fault("blackhole", method="PUT", key="*small/f00[1-3].bin"),
            Fault(
                "blackhole",
                method="PUT",
                key="*big/a.bin",
                match=lambda r: r.query.get("partNumber") == ["2"],
            ),
        ],
        TRANSPORTS,
        ["--retries", "1", "--read-timeout", "1"],
    ),
]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("name", "rules", "transport", "extra"),
    [
        pytest.param(n, r, t, x, id=f"{n.split(',')[0].split(':')[0]}-{t}")
        for n, r, ts, x in SCENARIOS
        for t in ts
    ],
)
def test_fault(
    name: str,
    rules: Callable[[], list[Fault]],
    transport: str,
    extra: list[str],
    fault_proxy: FaultProxy,
    s3_server: LocalS3Server,
    env: None,
    source: Path,
    tree: dict[str, bytes],
    prefix: str,
) -> None:
    client = s3_server.client()
    fault_proxy.set_rules(rules())
    started = time.monotonic()
    first = run(fault_proxy.endpoint_url, source, prefix, transport, *extra)
    assert time.monotonic() - started < 60, "the run must end in bounded time"
    assert sum(fault_proxy.stats["faults"].values()) > 0, "the fault never fired"
    outcome, missing = check_run(client, first, prefix, tree, name, transport)
    fault_proxy.clear()
    finish_and_check(client, fault_proxy.endpoint_url, source, prefix, tree, transport, outcome, missing)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_proxy_refuses_connections_mid_run(
    transport: str, fault_proxy: FaultProxy, s3_server: LocalS3Server, env: None, source: Path,
    tree: dict[str, bytes], prefix: str,
) -> None:  # fmt: skip
    """After the 8th PUT the endpoint stops listening: the rest fail, counted, and the run ends."""
    client = s3_server.client()
    fault_proxy.set_rules([then_call(8, lambda: fault_proxy.set_rules([Fault("refuse")]))])
    first = run(fault_proxy.endpoint_url, source, prefix, transport)
    outcome, missing = check_run(
        client, first, prefix, tree, "refuse after 8 PUTs", transport, unreachable=True
    )
    assert first.exit == 1 and missing
    fault_proxy.clear()
    finish_and_check(client, fault_proxy.endpoint_url, source, prefix, tree, transport, outcome, missing)


@pytest.mark.timeout(60)
def test_fault_on_bucket_checks_is_one_line_and_uploads_nothing(
    fault_proxy: FaultProxy, s3_server: LocalS3Server, env: None, source: Path, tree: dict[str, bytes],
    prefix: str,
) -> None:  # fmt: skip
    fault_proxy.set_rules([Fault("error", status=503, method="HEAD")])
    first = run(fault_proxy.endpoint_url, source, prefix, "crt")
    assert first.exit == 2
    assert len(first.stderr.strip().splitlines()) == 1 and "503" in first.stderr
    assert list_keys(s3_server.client(), FAULTS_BUCKET, prefix) == {}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_write_check_abort_rides_out_a_server_that_drops_out(
    transport: str, fault_proxy: FaultProxy, s3_server: LocalS3Server, env: None, source: Path,
    tree: dict[str, bytes], prefix: str,
) -> None:  # fmt: skip
    """Its abort fails more often than the check's own 3 attempts allow: it retries as the
    run does, and the run leaves no check upload."""
    fault_proxy.set_rules([Fault("error", status=503, method="DELETE", key=f"*{WRITE_CHECK}*", count=4)])
    first = run(fault_proxy.endpoint_url, source, prefix, transport, "--retries", "6")
    assert first.exit == 0, first.stderr
    assert fault_proxy.rules[0].fired == 4
    assert open_uploads(s3_server.client(), prefix) == []


@pytest.fixture(scope="module")
def restartable_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3Server]:
    """A SeaweedFS of its own, on a data dir it keeps, so that it can be stopped and restarted."""
    server = LocalS3Server(bucket=FAULTS_BUCKET, data_dir=str(tmp_path_factory.mktemp("weed")))
    with server:
        yield server
        if server.process is not None:
            server.process.kill()  # no need to wait for a graceful shutdown of throwaway data


def wait_until_serving(server: LocalS3Server, timeout: float = 30) -> None:
    """Until a PUT and a GET work: after a restart, the volume server registers a bit later."""
    client, deadline = server.client(), time.monotonic() + timeout
    while True:
        try:
            client.put_object(Bucket=FAULTS_BUCKET, Key="ready-probe", Body=b"ok")
            client.get_object(Bucket=FAULTS_BUCKET, Key="ready-probe")["Body"].read()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_stopped_and_restarted_mid_run(
    transport: str, restartable_server: LocalS3Server, monkeypatch: pytest.MonkeyPatch, source: Path,
    tree: dict[str, bytes], prefix: str,
) -> None:  # fmt: skip
    """SeaweedFS stops after the 8th PUT and comes back 3 s later on the same ports and data."""
    server = restartable_server
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    restarted = threading.Event()

    def bounce() -> None:
        server.stop(keep_data=True)
        time.sleep(3)
        server.start()
        wait_until_serving(server)
        restarted.set()

    with FaultProxy(upstream=("127.0.0.1", server.port)) as proxy:
        proxy.set_rules([then_call(8, bounce)])
        first = run(proxy.endpoint_url, source, prefix, transport)
        assert restarted.wait(60), "SeaweedFS did not come back"
        client = server.client()
        outcome, missing = check_run(
            client, first, prefix, tree, "SeaweedFS stopped + restarted", transport, unreachable=True
        )
        proxy.clear()
        finish_and_check(client, proxy.endpoint_url, source, prefix, tree, transport, outcome, missing)
