"""``update`` with the digest record, end to end on the in-memory transport: no server.

Two kinds of bucket: a plain one (ETags are MD5s, or multipart ``md5-N``) and one that answers as
a bucket with default SSE-KMS (``MemoryTransport(encryption="aws:kms")``: every ETag is opaque, a
new one at each write). On the second only the record can tell that an object holds a file's
bytes: it stores the ETag the server answered for our bytes, and the digest of those bytes.

Each case runs a first upload, changes one file (small, or multipart: 11 MiB in 5 MiB parts) or
its object, and checks what the next run reads and puts, then that a third run, with nothing
changed, reads nothing and puts nothing (the second run recorded what it learnt). Reads are
counted by ``ReadCounter`` (every read of file content goes through ``os.pread``/``os.preadv``).

Files just written are racy (see ``digest_record.RACY_MARGIN_NS``): the margin is shrunk to
50 ms and each change is followed by a wait of twice that.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput import digest_record, engine
from airflow_s3pput.digest_record import RECORD_FILE
from airflow_s3pput.etag import MIB
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.stats import PutResult, Stats
from tests.helpers import ReadCounter, make_tree
from tests.memory_transport import MemoryTransport
from tests.unit.test_engine_memory import opts as engine_opts

MARGIN_NS = 50_000_000
SMALL = "docs/page-3.txt"
BIG = "video/big.bin"  # 11 MiB: 3 parts of 5 MiB
KMS = "aws:kms"


def opts(src: Path, cache: Path, **overrides: Any) -> UploadOptions:
    """The engine tests' options, with the record in ``cache``."""
    return engine_opts(src, cache_dir=str(cache), **overrides)


def settle() -> None:
    """Let the files just written or changed become older than the (shortened) racy margin."""
    time.sleep(2 * MARGIN_NS / 1e9)


@dataclass
class Run:
    stats: Stats
    put: set[str]
    skipped: dict[str, str]
    read: set[str]
    results: list[PutResult] = field(default_factory=list)


class Scene:
    """A tree uploaded once to a memory bucket, with a record in its own cache directory."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encryption: str) -> None:
        monkeypatch.setattr(digest_record, "RACY_MARGIN_NS", MARGIN_NS)
        self.files = {f"docs/page-{i}.txt": os.urandom(300 + i) for i in range(6)}
        self.files["top.bin"] = os.urandom(4096)
        self.files[BIG] = os.urandom(11 * MIB)
        self.src = make_tree(tmp_path / "src", dict(self.files))
        self.cache = tmp_path / "cache"
        self.transport = MemoryTransport(encryption=encryption)
        self.reads = ReadCounter(monkeypatch)
        settle()

    def upload(self) -> Run:
        self.reads.reset()
        self.transport.calls.clear()
        results: list[PutResult] = []
        stats = engine.upload(opts(self.src, self.cache), transport=self.transport, on_result=results.append)
        assert stats.failed == 0, [r for r in results if r.action == "fail"]
        return Run(
            stats,
            put={r.key for r in results if r.action == "put"},
            skipped={r.key: r.reason for r in results if r.action == "skip"},
            read={k for k in self.files if self.reads.read(self.src / k)},
            results=results,
        )

    def local(self, key: str) -> bytes:
        return (self.src / key).read_bytes()

    def stored(self, key: str) -> bytes:
        return self.transport.objects[key].body


def _nothing(scene: Scene, key: str) -> None:
    pass


def _touch(scene: Scene, key: str) -> None:
    """Another mtime (and a new ctime), the same bytes. Set back, not ahead: a file whose mtime
    is in the future is never recorded."""
    st = (scene.src / key).stat()
    os.utime(scene.src / key, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))


def _edit_mtime_restored(scene: Scene, key: str) -> None:
    """Four bytes changed in the middle (another part of a multipart file), the mtime put back
    as ``touch -r`` would: only the ctime tells."""
    path = scene.src / key
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(st.st_size // 2)
        middle = f.read(4)
        f.seek(st.st_size // 2)
        f.write(bytes(b ^ 0xFF for b in middle))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _overwritten_by_another_tool(scene: Scene, key: str) -> None:
    """Another tool wrote other bytes of the same size under the key (a new ETag: opaque on a
    KMS bucket, the MD5 of its bytes on a plain one); the local file is untouched."""
    other = bytes(b ^ 0x5A for b in scene.local(key))
    etag = os.urandom(16).hex() if scene.transport.encryption else hashlib.md5(other).hexdigest()
    scene.transport.add(key, other, etag)


BUCKETS = [pytest.param("", id="plain"), pytest.param(KMS, id="kms")]
FILES = [pytest.param(SMALL, id="small"), pytest.param(BIG, id="multipart")]


@pytest.mark.parametrize("key", FILES)
@pytest.mark.parametrize("encryption", BUCKETS)
@pytest.mark.parametrize(
    ("change", "read", "put"),
    [
        # read: the changed file is read by the second run; put: it is put by it (by bucket kind)
        pytest.param(_nothing, False, {"": False, KMS: False}, id="unchanged"),
        pytest.param(_touch, True, {"": False, KMS: False}, id="touched-same-bytes"),
        pytest.param(_edit_mtime_restored, True, {"": True, KMS: True}, id="same-size-edit-mtime-restored"),
        pytest.param(_overwritten_by_another_tool, True, {"": True, KMS: True}, id="object-overwritten"),
    ],
)
def test_update_reads_and_puts_exactly_what_changed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    encryption: str,
    key: str,
    change: Callable[[Scene, str], None],
    read: bool,
    put: dict[str, bool],
) -> None:
    scene = Scene(tmp_path, monkeypatch, encryption)
    first = scene.upload()
    assert first.put == set(scene.files)
    assert first.read == set(scene.files)
    assert (scene.cache / RECORD_FILE).exists()

    change(scene, key)
    settle()
    second = scene.upload()
    assert second.read == ({key} if read else set())
    assert second.put == ({key} if put[encryption] else set())
    assert second.skipped == dict.fromkeys(set(scene.files) - second.put, "unchanged")
    assert scene.stored(key) == scene.local(key)

    third = scene.upload()  # the second run recorded what it read, or what it put
    assert (third.read, third.put) == (set(), set())
    assert third.stats.skipped == {"unchanged": len(scene.files)}
    assert set(scene.transport.calls) <= {"HeadBucket", "ListObjectsV2"}  # nothing sent, no check


@pytest.mark.parametrize("encryption", BUCKETS)
def test_every_change_at_once_is_put_and_only_those_files_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encryption: str
) -> None:
    """One run meets a touched file, two same-size edits (small and multipart) and an object
    overwritten under an unchanged file: it reads those four, puts the three changed."""
    scene = Scene(tmp_path, monkeypatch, encryption)
    scene.upload()
    _touch(scene, "docs/page-0.txt")
    _edit_mtime_restored(scene, SMALL)
    _edit_mtime_restored(scene, BIG)
    _overwritten_by_another_tool(scene, "top.bin")
    settle()
    run = scene.upload()
    assert run.read == {"docs/page-0.txt", SMALL, BIG, "top.bin"}
    assert run.put == {SMALL, BIG, "top.bin"}
    assert all(scene.stored(k) == scene.local(k) for k in scene.files)


@pytest.mark.parametrize(
    ("encryption", "key", "read", "put"),
    [
        # The ETag of a single PUT of those bytes: the record's for a small file, vouched for.
        pytest.param("", SMALL, False, False, id="plain-small"),
        # Our object was multipart (md5-3): another ETag, read, and the MD5 says "the same".
        pytest.param("", BIG, True, False, id="plain-multipart"),
        # A new opaque ETag: the object's CRC64NVME (one HEAD) says "the same bytes".
        pytest.param(KMS, SMALL, True, False, id="kms-small"),
        pytest.param(KMS, BIG, True, False, id="kms-multipart"),
    ],
)
def test_an_object_rewritten_with_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encryption: str, key: str, read: bool, put: bool
) -> None:
    """Another tool PUT our very bytes again under the key (in one piece)."""
    scene = Scene(tmp_path, monkeypatch, encryption)
    scene.upload()
    data = scene.local(key)
    scene.transport.add(key, data, os.urandom(16).hex() if encryption else hashlib.md5(data).hexdigest())
    run = scene.upload()
    assert (run.read, run.put) == ({key} if read else set(), {key} if put else set())
    assert scene.stored(key) == data
    third = scene.upload()
    assert (third.read, third.put) == (set(), set())
