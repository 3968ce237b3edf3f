"""A mapped put's name fits ``task_instance.rendered_map_index`` (VARCHAR(250)) with both ends
of its keys readable; offline (the real runs are in ``test_upload_dag.py``)."""

from __future__ import annotations

import pytest

from airflow_s3pput.provider.operators import MAX_MAP_INDEX_NAME, S3PPutBatchOperator, batch_name, shorten

KEY_150 = "exports/" + "/".join(f"{p}=value-of-the-{p}-partition" for p in ("region", "dataset", "day"))
FIRST = KEY_150 + "/part-00000-c000.snappy.parquet"
LAST = KEY_150 + "/part-00099-c000.snappy.parquet"


def batch(first: str, last: str, files: int) -> dict[str, object]:
    return {"index": 0, "after": None, "last": last, "first_key": first, "last_key": last,
            "files": files, "bytes": 1}  # fmt: skip


@pytest.mark.parametrize(
    ("first", "last", "files", "expected"),
    [
        pytest.param("a/b", "a/c", 2, "a/b .. a/c (2 files)", id="short-range"),
        pytest.param("a/b", "a/b", 1, "a/b (1 file)", id="one-file"),
        pytest.param("", "", 0, "nothing to put: delete extraneous keys", id="delete-only"),
    ],
)
def test_short_names_are_kept_whole(first: str, last: str, files: int, expected: str) -> None:
    assert batch_name(batch(first, last, files)) == expected


def test_two_keys_of_150_characters_are_cut_in_their_middles() -> None:
    assert len(FIRST) >= 140 and len(LAST) >= 140
    name = batch_name(batch(FIRST, LAST, 100))
    assert len(name) <= MAX_MAP_INDEX_NAME
    first, _, rest = name.partition(" .. ")
    last, _, count = rest.rpartition(" (")
    assert count == "100 files)"
    for shown, key in ((first, FIRST), (last, LAST)):
        head, _, tail = shown.partition("…")
        assert key.startswith(head) and key.endswith(tail) and len(head) > 50 and len(tail) > 50
    assert last.endswith("part-00099-c000.snappy.parquet")  # the file names stay readable


@pytest.mark.parametrize("length", [10, 200, 249, 250, 251, 1024])
def test_one_long_key_fits_too(length: int) -> None:
    key = "k" * (length - 1) + "z"
    name = batch_name(batch(key, key, 1))
    assert len(name) <= MAX_MAP_INDEX_NAME and name.endswith("z (1 file)")


def test_a_short_first_key_leaves_the_room_to_the_last() -> None:
    name = batch_name(batch("a", "b" * 400, 7))
    assert len(name) == MAX_MAP_INDEX_NAME and name.startswith("a .. bbb")


@pytest.mark.parametrize(
    ("text", "room"), [("abcdef", 6), ("abcdef", 5), ("abcdef", 3), ("abcdef", 2), ("abcdef", 1)]
)
def test_shorten_keeps_both_ends_within_room(text: str, room: int) -> None:
    cut = shorten(text, room)
    assert len(cut) <= room
    assert cut == text or room < 3 or (cut[0] == "a" and cut[-1] == "f" and "…" in cut)


def test_the_operator_names_its_batch() -> None:
    put = S3PPutBatchOperator(task_id="put", source="/src", bucket="bkt", batch=batch(FIRST, LAST, 100))
    assert put.batch_name == batch_name(batch(FIRST, LAST, 100))
