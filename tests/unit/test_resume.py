"""A multipart upload a killed run left open is carried on from the parts that landed, on the
in-memory transport: which parts are reused, and which uploads are not touched."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput import engine, upload_journal
from airflow_s3pput.etag import MIB
from airflow_s3pput.upload_journal import journal_for
from tests.memory_transport import MemoryTransport
from tests.unit.test_engine_memory import opts

PART = 5 * MIB


def big_file(tmp_path: Path, parts: int = 4) -> tuple[Path, bytes]:
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(parts * PART - 1000)
    (src / "big.bin").write_bytes(data)
    return src, data


def leave_upload(transport: MemoryTransport, key: str, data: bytes, numbers: list[int]) -> str:
    """An upload a killed run left: these parts of ``data`` landed."""
    upload_id = transport.open_upload(key, "2026-01-01T00:00:00.000Z")
    for n in numbers:
        body = data[(n - 1) * PART : n * PART]
        transport.uploads[upload_id].parts[n] = (body, hashlib.md5(body).hexdigest())
    return upload_id


def put_parts(transport: MemoryTransport) -> int:
    return transport.calls["UploadPart"]


@pytest.mark.parametrize("mode", ["update", "stupid"])
def test_the_parts_that_landed_are_not_sent_again(tmp_path: Path, mode: str) -> None:
    src, data = big_file(tmp_path)
    transport = MemoryTransport()
    upload_id = leave_upload(transport, "big.bin", data, [1, 2])
    stats = engine.upload(opts(src, mode=mode), transport=transport)
    assert (stats.files_put, stats.failed) == (1, 0)
    assert stats.bytes_resumed == 2 * PART
    assert put_parts(transport) == 2  # parts 3 and 4 only
    assert transport.objects["big.bin"].body == data
    assert transport.uploads == {}
    assert upload_id not in transport.uploads


def test_a_part_that_holds_other_bytes_means_starting_afresh(tmp_path: Path) -> None:
    src, data = big_file(tmp_path)
    transport = MemoryTransport()
    edited = bytes([data[0] ^ 1]) + data[1:]  # the file changed since the upload started
    leave_upload(transport, "big.bin", edited, [1, 2])
    stats = engine.upload(opts(src), transport=transport)
    assert (stats.files_put, stats.bytes_resumed) == (1, 0)
    assert put_parts(transport) == 4
    assert transport.objects["big.bin"].body == data
    # another tool's upload (not in this host's journal) is not ours to abort
    assert len(transport.uploads) == 1


def test_an_upload_of_this_host_that_holds_other_bytes_is_aborted(tmp_path: Path) -> None:
    src, data = big_file(tmp_path)
    transport = MemoryTransport()
    upload_id = leave_upload(transport, "big.bin", bytes(len(data)), [1])
    journal = journal_for(opts(src))
    journal.started("", "big.bin", upload_id)
    journal.close()  # that run ended: its upload is a leftover
    engine.upload(opts(src), transport=transport)
    assert transport.uploads == {}


def test_resume_off_starts_afresh(tmp_path: Path) -> None:
    src, data = big_file(tmp_path)
    transport = MemoryTransport()
    leave_upload(transport, "big.bin", data, [1, 2, 3])
    stats = engine.upload(opts(src, resume=False), transport=transport)
    assert (stats.bytes_resumed, put_parts(transport)) == (0, 4)


def test_an_upload_whose_part_etags_are_opaque_is_not_resumed(tmp_path: Path) -> None:
    """On an SSE-KMS bucket a part's ETag is not its MD5: nothing proves it holds our bytes."""
    src, data = big_file(tmp_path)
    transport = MemoryTransport(encryption="aws:kms")
    upload_id = transport.open_upload("big.bin", "2026-01-01T00:00:00.000Z")
    transport.uploads[upload_id].parts[1] = (data[:PART], "ab" * 16)
    stats = engine.upload(opts(src), transport=transport)
    assert (stats.files_put, stats.bytes_resumed, put_parts(transport)) == (1, 0, 4)


def test_the_summary_says_what_was_resumed(tmp_path: Path) -> None:
    src, data = big_file(tmp_path)
    transport = MemoryTransport()
    leave_upload(transport, "big.bin", data, [1, 2, 3])
    stats = engine.upload(opts(src), transport=transport)
    summary: dict[str, Any] = stats.to_dict()
    assert summary["bytes_resumed"] == 3 * PART
    assert "bytes resumed" in stats.table()


class _SlowParts(MemoryTransport):
    def upload_part(self, *args: Any) -> str:
        time.sleep(0.2)  # two on the wire: the 12 parts take 1.2 s at least
        return super().upload_part(*args)


class _Deadline(Exception):
    """What an Airflow ``execution_timeout`` raises in the task's main thread."""


def test_any_interruption_stops_the_run_and_aborts_what_is_open(tmp_path: Path) -> None:
    """Not only Ctrl-C: an exception raised in the run's thread (Airflow's timeout raises one
    from a SIGALRM handler, as here) stops feeding and aborts the open multipart upload
    instead of waiting for every part."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(12 * PART))
    transport = _SlowParts()

    def deadline(signum: int, frame: Any) -> None:
        raise _Deadline()

    previous = signal.signal(signal.SIGALRM, deadline)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    started = time.monotonic()
    try:
        with pytest.raises(_Deadline):
            engine.upload(opts(src, threads=2), transport=transport)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 0.9  # not the 12 parts' time
    assert transport.uploads == {}
    assert "big.bin" not in transport.objects


def test_leftovers_are_aborted_within_the_runs_key_range_only(tmp_path: Path) -> None:
    """One Airflow batch does not abort the upload another batch's retry would carry on."""
    from airflow_s3pput.walker import KeyRange

    src, _ = big_file(tmp_path)
    transport = MemoryTransport()
    mine = transport.open_upload("a/big.bin", "2026-01-01T00:00:00.000Z")
    theirs = transport.open_upload("b/big.bin", "2026-01-01T00:00:00.000Z")
    journal = journal_for(opts(src))
    journal.started("", "a/big.bin", mine)
    journal.started("", "b/big.bin", theirs)
    journal.close()  # that run ended: both are leftovers
    reader = journal_for(opts(src))
    upload_journal.abort_leftovers(transport, reader, "", KeyRange("a/", "a/~"))
    assert set(transport.uploads) == {theirs}
