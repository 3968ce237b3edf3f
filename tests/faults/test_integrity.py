"""Integrity on the wire, for both data planes (``--transport crt``, the default, and ``boto3``).

What a client was told to send proves nothing: these tests look at what went over the wire, at
a recording ``FaultProxy`` between ``s3pput`` (run through its CLI, with the endpoint pointed at
the proxy, so each transport builds its own clients) and a real SeaweedFS.

- Every PutObject and every UploadPart carries a ``Content-MD5`` that is the MD5 of the very
  bytes that request carried.
- With one byte flipped in a share of the PUT and UploadPart bodies, no object is stored with
  wrong bytes, and every file has landed intact or is reported failed (exit 1).
- A damaged transfer is sent again, like any transient fault: with the default settings and 20%
  of the bodies damaged, every file lands.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.helpers import CliRun, CliRunner, list_keys

from .proxy import FAULTS_BUCKET, Fault, FaultProxy, WireRequest

pytestmark = pytest.mark.timeout(120)

MIB = 1024 * 1024
PART = 5 * MIB
MULTIPART = ["--multipart-threshold", "5MiB", "--part-size", "5MiB"]
TRANSPORTS = ["crt", "boto3"]
SMALL_SIZES = (0, 1, 700, 5000, 40_000, 300_000)
SMALL_FILES = 36
BIG_FILES = {"big/a.bin": 11 * MIB, "big/b.bin": 6 * MIB}  # 3 parts and 2 parts


@pytest.fixture(scope="module")
def tree() -> dict[str, bytes]:
    """Relative path -> bytes: small files (single PUTs, one empty) and two multipart ones."""
    rng = random.Random(17)
    files = {
        f"small/f{i:03d}.bin": rng.randbytes(SMALL_SIZES[i % len(SMALL_SIZES)]) for i in range(SMALL_FILES)
    }
    files.update({rel: rng.randbytes(size) for rel, size in BIG_FILES.items()})
    return files


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, tree: dict[str, bytes]) -> Path:
    root = tmp_path_factory.mktemp("integrity-tree")
    for rel, body in tree.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    return root


@pytest.fixture
def prefix() -> str:
    return f"i-{uuid.uuid4().hex[:10]}/"


def expected_parts(tree: dict[str, bytes]) -> dict[str, set[int]]:
    """Relative path -> the part numbers its multipart upload must send."""
    return {rel: set(range(1, -(-len(body) // PART) + 1)) for rel, body in tree.items() if len(body) >= PART}


def upload(cli: CliRunner, proxy: FaultProxy, source: Path, prefix: str, transport: str) -> CliRun:
    """One ``s3pput`` run with default settings (but small parts) through ``proxy``."""
    return cli(
        "--bucket", FAULTS_BUCKET, "--prefix", prefix, "--endpoint-url", proxy.endpoint_url,
        "--transport", transport, "--json", *MULTIPART, str(source),
    )  # fmt: skip


def object_writes(recorded: list[WireRequest], prefix: str) -> list[WireRequest]:
    """The PutObject and UploadPart requests for keys under ``prefix``, in arrival order."""
    return [r for r in recorded if r.operation in ("PutObject", "UploadPart") and r.key.startswith(prefix)]


def failed_keys(run: CliRun) -> set[str]:
    """The keys of the files the run reported failed (one ``s3pput: failed PATH -> KEY: ...`` each)."""
    return {
        line.split(" -> ", 1)[1].split(": ", 1)[0]
        for line in run.err.splitlines()
        if line.startswith("s3pput: failed ") and " -> " in line
    }


@dataclass
class Stored:
    intact: set[str]
    corrupted: set[str]
    foreign: set[str]


def stored(client: Any, prefix: str, tree: dict[str, bytes]) -> Stored:
    """Every object under ``prefix`` downloaded (not through the proxy) and compared with its file."""
    expected = {prefix + rel: hashlib.md5(body).hexdigest() for rel, body in tree.items()}
    state = Stored(set(), set(), set())
    for key in list_keys(client, FAULTS_BUCKET, prefix):
        if key not in expected:
            state.foreign.add(key)
            continue
        body = client.get_object(Bucket=FAULTS_BUCKET, Key=key)["Body"].read()
        (state.intact if hashlib.md5(body).hexdigest() == expected[key] else state.corrupted).add(key)
    return state


def open_uploads(client: Any, prefix: str) -> list[str]:
    response = client.list_multipart_uploads(Bucket=FAULTS_BUCKET, Prefix=prefix)
    return [u["Key"] for u in response.get("Uploads", [])]


# --------------------------------------------------------------------------------------------
# Content-MD5 on every write, as seen on the wire
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_put_and_part_carries_the_md5_of_its_bytes(
    transport: str, cli: CliRunner, fault_proxy: FaultProxy, s3_server: LocalS3Server,
    source: Path, tree: dict[str, bytes], prefix: str,
) -> None:  # fmt: skip
    fault_proxy.record = True
    run = upload(cli, fault_proxy, source, prefix, transport)
    assert run.code == 0, run.err
    assert run.summary["files_put"] == len(tree)

    writes = object_writes(fault_proxy.recorded, prefix)
    puts = Counter(r.key[len(prefix) :] for r in writes if r.operation == "PutObject")
    parts: dict[str, list[int]] = defaultdict(list)
    for r in writes:
        if r.operation == "UploadPart":
            parts[r.key[len(prefix) :]] += [int(n) for n in r.query["partNumber"]]
    # The test sees what it means to check: one PUT per small file, each part once.
    multipart = expected_parts(tree)
    assert puts == Counter(rel for rel in tree if rel not in multipart)
    assert {rel: sorted(numbers) for rel, numbers in parts.items()} == {
        rel: sorted(numbers) for rel, numbers in multipart.items()
    }
    for r in writes:
        where = f"{r.operation} {r.target}"
        assert "content-md5" in r.headers, f"{where} sent no Content-MD5: {sorted(r.headers)}"
        assert r.body_md5 is not None, f"{where}: the proxy did not see the whole body"
        assert r.headers["content-md5"] == r.body_md5_base64, where
        assert r.status == 200, where
    sizes = sorted(r.body_size or 0 for r in writes if r.operation == "UploadPart")
    assert sizes == sorted(
        min(PART, len(tree[rel]) - (n - 1) * PART) for rel, numbers in multipart.items() for n in numbers
    )
    # And what the server stored is what we have.
    state = stored(s3_server.client(), prefix, tree)
    assert state.intact == {prefix + rel for rel in tree}
    assert not state.corrupted and not state.foreign


# --------------------------------------------------------------------------------------------
# Bodies damaged in transit
# --------------------------------------------------------------------------------------------


def corrupting_rules() -> list[Fault]:
    """One byte flipped in 20% of the single PUTs (random draws) and in every 5th part.

    The parts rule is periodic rather than random so that the few parts of the tree are sure to
    see a damaged one. ``max_repeats=2``: the same request is damaged at most twice in a row,
    so that a client that sends a damaged request again (3 attempts suffice) gets it through
    whatever the draws.
    """
    return [
        Fault("corrupt", method="PUT", query="partNumber", every=5, max_repeats=2),
        Fault("corrupt", method="PUT", match=lambda r: not r.query, fraction=0.2, seed=20, max_repeats=2),
    ]


def damaged(writes: list[WireRequest], operation: str) -> list[WireRequest]:
    return [r for r in writes if r.operation == operation and r.action == "corrupt"]


def corrupted_upload(
    cli: CliRunner, proxy: FaultProxy, source: Path, prefix: str, transport: str
) -> tuple[CliRun, list[WireRequest]]:
    proxy.record = True
    proxy.set_rules(corrupting_rules())
    run = upload(cli, proxy, source, prefix, transport)
    writes = object_writes(proxy.recorded, prefix)
    assert damaged(writes, "PutObject"), "no single PUT was damaged"
    assert damaged(writes, "UploadPart"), "no part was damaged"
    for r in damaged(writes, "PutObject") + damaged(writes, "UploadPart"):
        # The server saw bytes that do not match the Content-MD5 and refused them.
        assert r.status == 400, f"{r.operation} {r.target} damaged, and the server answered {r.status}"
    return run, writes


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_damaged_bodies_are_never_stored_and_every_file_is_accounted_for(
    transport: str, cli: CliRunner, fault_proxy: FaultProxy, s3_server: LocalS3Server,
    source: Path, tree: dict[str, bytes], prefix: str,
) -> None:  # fmt: skip
    run, _ = corrupted_upload(cli, fault_proxy, source, prefix, transport)
    client = s3_server.client()
    state = stored(client, prefix, tree)
    failed = failed_keys(run)
    assert run.code in (0, 1), run.err
    assert not state.corrupted, f"stored with wrong bytes: {sorted(state.corrupted)}"
    assert not state.foreign, f"unexpected objects: {sorted(state.foreign)}"
    # Every file landed intact or was reported failed, and not both.
    assert state.intact | failed == {prefix + rel for rel in tree}
    assert not state.intact & failed
    assert run.summary["files_failed"] == len(failed)
    assert run.summary["files_put"] == len(state.intact)
    assert run.code == (1 if failed else 0)
    assert open_uploads(client, prefix) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_damaged_transfers_are_retried_until_every_file_lands(
    transport: str, cli: CliRunner, fault_proxy: FaultProxy, s3_server: LocalS3Server,
    source: Path, tree: dict[str, bytes], prefix: str,
) -> None:  # fmt: skip
    """A BadDigest is a transient fault: the body is read again and sent again."""
    run, writes = corrupted_upload(cli, fault_proxy, source, prefix, transport)
    landed: set[tuple[str, str]] = {
        (r.key, "".join(r.query.get("partNumber", []))) for r in writes if r.status == 200
    }
    not_resent = sorted(
        f"{r.operation} {r.key}"
        for r in writes
        if r.action == "corrupt" and (r.key, "".join(r.query.get("partNumber", []))) not in landed
    )
    assert not not_resent, f"damaged and never sent again intact: {not_resent}"
    assert run.code == 0, run.err
    assert run.summary["files_failed"] == 0
    state = stored(s3_server.client(), prefix, tree)
    assert state.intact == {prefix + rel for rel in tree}
