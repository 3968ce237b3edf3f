"""Put modes, the details mutation testing found unchecked: ``update`` compares the remote ETag
(not any ETag), and a bad mode name lists the good ones."""

from __future__ import annotations

import pytest

from airflow_s3pput.cli import render  # the message as the shell prints it
from airflow_s3pput.errors import UsageError
from airflow_s3pput.modes import PUT_CHANGED, SKIP_UNCHANGED, Decision, RemoteObject, get_mode


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
