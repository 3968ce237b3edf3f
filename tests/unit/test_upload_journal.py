"""The journal of unfinished multipart uploads: only a dead process's uploads are leftovers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_s3pput import upload_journal
from airflow_s3pput.upload_journal import UploadJournal
from airflow_s3pput.walker import KeyRange
from tests.memory_transport import MemoryTransport


@pytest.fixture
def journal(tmp_path: Path) -> UploadJournal:
    return UploadJournal(tmp_path, "http://127.0.0.1:1", "bucket")


def record_in_child(tmp_path: Path, key: str, upload_id: str) -> None:
    """A process that starts an upload and dies without finishing it (like kill -9)."""
    code = (
        "from pathlib import Path; from airflow_s3pput.upload_journal import UploadJournal;"
        f"journal = UploadJournal(Path({str(tmp_path)!r}), 'http://127.0.0.1:1', 'bucket');"
        f"journal.started(journal.starting({key!r}), {key!r}, {upload_id!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_dead_processs_unfinished_upload_is_a_leftover(journal: UploadJournal, tmp_path: Path) -> None:
    record_in_child(tmp_path, "p/big.bin", "u-dead")
    record_in_child(tmp_path, "other/x.bin", "u-elsewhere")
    assert journal.leftovers("p/") == [("p/big.bin", "u-dead")]


def test_a_running_runs_upload_is_never_a_leftover(journal: UploadJournal, tmp_path: Path) -> None:
    # a run still going in this process
    journal.started(journal.starting("p/mine.bin"), "p/mine.bin", "u-live")
    other = UploadJournal(tmp_path, "http://127.0.0.1:1", "bucket")  # e.g. a parallel task's run
    assert other.leftovers("p/") == []
    journal.close()  # the run ended without finishing it (its abort could not be sent)
    assert other.leftovers("p/") == [("p/mine.bin", "u-live")]


def test_a_finished_upload_is_not_a_leftover(journal: UploadJournal, tmp_path: Path) -> None:
    record_in_child(tmp_path, "p/done.bin", "u-done")
    journal.finished("u-done")
    assert journal.leftovers("") == []


def test_another_hosts_upload_is_never_judged_from_here(
    journal: UploadJournal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload_journal.socket, "gethostname", lambda: "worker-a")
    journal.started(journal.starting("p/a.bin"), "p/a.bin", "u-a")
    monkeypatch.setattr(upload_journal.socket, "gethostname", lambda: "worker-b")
    monkeypatch.setattr(upload_journal, "_process_started", lambda pid: None)  # "not running here"
    assert journal.leftovers("p/") == []


def test_a_create_whose_answer_was_lost_leaves_an_intent(journal: UploadJournal, tmp_path: Path) -> None:
    code = (
        "from pathlib import Path; from airflow_s3pput.upload_journal import UploadJournal;"
        f"UploadJournal(Path({str(tmp_path)!r}), 'http://127.0.0.1:1', 'bucket').starting('p/lost.bin')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    ((key, token),) = journal.leftovers("p/")
    assert key == "p/lost.bin" and token.startswith("intent-")


def test_torn_and_foreign_lines_are_skipped(journal: UploadJournal, tmp_path: Path) -> None:
    record_in_child(tmp_path, "p/big.bin", "u-dead")
    with open(journal.path, "a") as lines:
        lines.write('{"op": "start", "id": "u-torn", "key"\n')  # a line cut short
        lines.write("not json at all\n")
    assert journal.leftovers("p/") == [("p/big.bin", "u-dead")]


def test_compaction_keeps_only_unfinished_uploads(
    journal: UploadJournal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload_journal, "COMPACT_LINES", 4)
    record_in_child(tmp_path, "p/kept.bin", "u-kept")
    for number in range(3):
        journal.started(journal.starting(f"p/f{number}"), f"p/f{number}", f"u{number}")
        journal.finished(f"u{number}")
    journal.compact()
    assert len(journal.path.read_text().splitlines()) == 1
    assert journal.leftovers("p/") == [("p/kept.bin", "u-kept")]


def test_an_unwritable_journal_never_fails_an_upload(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    journal = UploadJournal(blocked / "sub", "e", "b")
    journal.started(journal.starting("k"), "k", "u")  # no exception
    assert journal.leftovers("") == []


def test_a_killed_process_left_unreaped_is_gone() -> None:
    """A killed run's worker processes may stay zombies (their parent died too): not running."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert upload_journal._process_started(child.pid) is not None
        child.kill()
        deadline = 50
        while upload_journal._process_started(child.pid) is not None and deadline:
            time.sleep(0.05)
            deadline -= 1
        assert upload_journal._process_started(child.pid) is None  # a zombie until waited for
    finally:
        child.wait()


def test_owner_tells_running_left_and_unknown_uploads(journal: UploadJournal, tmp_path: Path) -> None:
    other = UploadJournal(tmp_path, "http://127.0.0.1:1", "bucket")  # another run of this process
    other.started("", "k", "u-running")
    journal.started("", "k", "u-mine")
    assert journal.owner("u-running") == "running"
    other.close()
    assert journal.owner("u-running") == "left"
    assert journal.owner("u-mine") == "unknown"  # this run's own
    assert journal.owner("u-never-seen") == "unknown"
    journal.adopt("k", "u-running")
    assert journal.owner("u-running") == "unknown"  # carried on by this run now


def _left_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, upload_id: str, age: float) -> None:
    """A run of this process that started ``key``'s upload ``age`` seconds ago and ended
    without finishing it."""
    now = time.time()
    with monkeypatch.context() as patch:
        patch.setattr(upload_journal.time, "time", lambda: now - age)
        run = UploadJournal(tmp_path, "http://127.0.0.1:1", "bucket")
        run.started(run.starting(key), key, upload_id)
    run.close()


def test_a_stale_leftover_under_another_prefix_is_aborted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DAG writing ``exports/{{ ds }}/`` never runs yesterday's prefix again: what a killed
    try left there is aborted by a later run of another prefix once it is a day old, and kept
    until then for a retry of that task to resume."""
    day = upload_journal.STALE_AFTER_SECONDS
    transport = MemoryTransport()
    old = transport.create_multipart("exports/d1/big.bin", {})
    recent = transport.create_multipart("exports/d2/big.bin", {})
    _left_at(tmp_path, monkeypatch, "exports/d1/big.bin", old, age=day + 60)
    _left_at(tmp_path, monkeypatch, "exports/d2/big.bin", recent, age=day - 60)
    journal = UploadJournal(tmp_path, "http://127.0.0.1:1", "bucket")
    upload_journal.abort_leftovers(transport, journal, "exports/d3/")
    assert set(transport.uploads) == {recent}
    assert journal.leftovers("exports/") == [("exports/d2/big.bin", recent)]


def test_a_stale_upload_of_a_running_run_is_never_aborted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = MemoryTransport()
    upload_id = transport.create_multipart("exports/d1/big.bin", {})
    now = time.time()
    monkeypatch.setattr(upload_journal.time, "time", lambda: now - 2 * upload_journal.STALE_AFTER_SECONDS)
    running = UploadJournal(tmp_path, "http://127.0.0.1:1", "bucket")  # a long upload, still going
    running.started(running.starting("exports/d1/big.bin"), "exports/d1/big.bin", upload_id)
    monkeypatch.undo()
    upload_journal.abort_leftovers(transport, UploadJournal(tmp_path, "http://127.0.0.1:1", "bucket"), "x/")
    assert set(transport.uploads) == {upload_id}


def test_a_leftover_outside_the_runs_key_range_is_another_batchs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mapped puts of one prefix clean up their own key ranges only, until a leftover is stale."""
    transport = MemoryTransport()
    mine = transport.create_multipart("p/a.bin", {})
    theirs = transport.create_multipart("p/z.bin", {})
    _left_at(tmp_path, monkeypatch, "p/a.bin", mine, age=60)
    _left_at(tmp_path, monkeypatch, "p/z.bin", theirs, age=60)
    journal = UploadJournal(tmp_path, "http://127.0.0.1:1", "bucket")
    upload_journal.abort_leftovers(transport, journal, "p/", KeyRange(None, "p/m"))
    assert set(transport.uploads) == {theirs}
