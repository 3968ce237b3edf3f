"""Put modes: every row of the truth table in ``modes.py``."""

from __future__ import annotations

import pytest

from airflow_s3pput.cli import render  # the message as the shell prints it
from airflow_s3pput.errors import UsageError
from airflow_s3pput.modes import MODES, PUT_CHANGED, SKIP_UNCHANGED, Decision, RemoteObject, get_mode


class FakeLocal:
    """Local content whose ETag comparison is scripted; ``None`` means it must not be asked."""

    def __init__(self, size: int, etag_equal: bool | None) -> None:
        self.stored_size = size
        self.etag_equal = etag_equal

    def matches_etag(self, etag: str) -> bool:
        assert self.etag_equal is not None, "this mode must not compare ETags here"
        return self.etag_equal


MISSING = None
PRESENT = RemoteObject(size=10, etag="0" * 32)


@pytest.mark.parametrize(
    ("mode", "remote", "local_size", "etag_equal", "decision"),
    [
        pytest.param("add", MISSING, 10, None, Decision(True, "new"), id="add-missing-put-new"),
        pytest.param("add", PRESENT, 10, None, Decision(False, "exists"), id="add-present-skip-exists"),
        pytest.param("add", PRESENT, 99, None, Decision(False, "exists"), id="add-present-changed-skip"),
        pytest.param("stupid", MISSING, 10, None, Decision(True, "always"), id="stupid-missing-put"),
        pytest.param("stupid", PRESENT, 10, None, Decision(True, "always"), id="stupid-present-put"),
        pytest.param("update", MISSING, 10, None, Decision(True, "new"), id="update-missing-put-new"),
        pytest.param("update", PRESENT, 11, None, Decision(True, "changed"), id="update-size-differs"),
        pytest.param("update", PRESENT, 10, False, Decision(True, "changed"), id="update-etag-differs"),
        pytest.param("update", PRESENT, 10, True, Decision(False, "unchanged"), id="update-unchanged"),
    ],
)
def test_truth_table(
    mode: str, remote: RemoteObject | None, local_size: int, etag_equal: bool | None, decision: Decision
) -> None:
    assert get_mode(mode).decide(FakeLocal(local_size, etag_equal), remote) == decision


@pytest.mark.parametrize(
    ("mode", "needs_listing"),
    [
        pytest.param("add", True, id="add"),
        pytest.param("stupid", False, id="stupid-never-lists"),
        pytest.param("update", True, id="update"),
    ],
)
def test_needs_listing(mode: str, needs_listing: bool) -> None:
    assert get_mode(mode).needs_listing is needs_listing


def test_modes_are_exactly_three() -> None:
    assert sorted(MODES) == ["add", "stupid", "update"]


@pytest.mark.parametrize("name", [pytest.param(n, id=n or "empty") for n in ("", "sync", "Update", "add ")])
def test_invalid_mode(name: str) -> None:
    with pytest.raises(UsageError, match="invalid put_mode"):
        get_mode(name)


# --- update: the ETag compared after quotes and case are normalised


class OnlyThisEtag:
    """Local content of 3 bytes whose ETag is ``etag`` and nothing else."""

    def __init__(self, etag: str) -> None:
        self.etag = etag
        self.asked: list[object] = []

    @property
    def stored_size(self) -> int:
        return 3

    def matches_etag(self, etag: str) -> bool:
        self.asked.append(etag)
        return etag == self.etag


@pytest.mark.parametrize(
    ("remote_etag", "expected"),
    [
        pytest.param("abc", SKIP_UNCHANGED, id="same-etag-skips"),
        pytest.param("abd", PUT_CHANGED, id="other-etag-puts"),
    ],
)
def test_update_asks_about_the_remote_etag(remote_etag: str, expected: Decision) -> None:
    local = OnlyThisEtag("abc")
    assert get_mode("update").decide(local, RemoteObject(3, remote_etag)) == expected
    assert local.asked == [remote_etag]


def test_an_invalid_mode_lists_the_valid_ones() -> None:
    with pytest.raises(UsageError) as raised:
        get_mode("sync")
    assert render(raised.value) == "invalid --put 'sync': expected one of add, stupid, update"
