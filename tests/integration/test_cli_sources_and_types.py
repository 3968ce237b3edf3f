"""Smaller things a user of the CLI met (issue 27, point 7), against SeaweedFS: one directory given
twice, directory symlinks passed over in silence, MIME types written in capitals or as
``text/*``."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from tests.helpers import CliRunner, list_keys, make_tree

TREE: dict[str, bytes | str] = {
    "a.txt": "a" * 100,
    "d/b.css": "b { }" * 100,
    "img/c.png": b"\x89PNG" + bytes(100),
}


def test_one_directory_given_twice_is_one_source(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "d", TREE)
    run = cli("--bucket", bucket, "--json", str(src), f"{src}/")
    assert run.code == 0, run.err
    assert run.summary["files_put"] == len(TREE)
    assert run.err.splitlines() == [
        f"s3pput: warning: SOURCE '{src}/' names one given before: it is walked once"
    ]
    assert set(list_keys(s3_client, bucket)) == set(TREE)


def test_verbose_says_how_many_directory_symlinks_were_not_followed(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    make_tree(tmp_path / "elsewhere", {"x.txt": "x"})
    src = make_tree(tmp_path / "src", TREE)
    (src / "to-elsewhere").symlink_to(tmp_path / "elsewhere")
    (src / "d" / "up").symlink_to(src)
    run = cli("--bucket", bucket, "--verbose", str(src))
    assert run.code == 0, run.err
    assert "dir symlinks   2 not followed (see --follow-symlinks)" in run.out
    as_json = cli("--bucket", bucket, "--verbose", "--json", str(src))
    assert as_json.summary["dir_symlinks_not_followed"] == 2
    assert set(list_keys(s3_client, bucket)) == set(TREE)


def stored_encodings(s3_client: Any, bucket: str) -> dict[str, str]:
    return {
        key: s3_client.head_object(Bucket=bucket, Key=key).get("ContentEncoding", "")
        for key in list_keys(s3_client, bucket)
    }


def test_gzip_types_are_matched_without_case(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", TREE)
    run = cli("--bucket", bucket, "--gzip", "--gzip-type", "TEXT/CSS", str(src))
    assert run.code == 0, run.err
    assert stored_encodings(s3_client, bucket) == {"a.txt": "", "d/b.css": "gzip", "img/c.png": ""}
    body = s3_client.get_object(Bucket=bucket, Key="d/b.css")["Body"].read()
    assert gzip.decompress(body) == b"b { }" * 100


def test_a_gzip_type_family_takes_every_type_of_it(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", TREE)
    run = cli("--bucket", bucket, "--gzip", "--gzip-type", "text/*", str(src))
    assert run.code == 0, run.err
    assert stored_encodings(s3_client, bucket) == {"a.txt": "gzip", "d/b.css": "gzip", "img/c.png": ""}


def test_a_doubled_slash_in_the_prefix_is_kept_and_warned_about(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    """S3 keeps ``a//b/f`` as a key of its own; SeaweedFS stores it as ``a/b/f``, so there every
    update run puts the files again. The key is what the user asked for, with one warning."""
    src = make_tree(tmp_path / "src", {"f.txt": "f"})
    run = cli("--bucket", bucket, "--prefix", "a//b", "--json", str(src))
    assert run.code == 0, run.err
    assert run.err.splitlines() == [
        "s3pput: warning: prefix 'a//b' holds '//': S3 keeps it in the keys, but SeaweedFS and some "
        "other S3-compatible stores collapse it, and then update finds none of the objects it put"
    ]
    again = cli("--bucket", bucket, "--prefix", "a//b", "--json", str(src))
    assert again.summary["files_put"] == 1  # SeaweedFS: what the warning says
    quiet = cli("--bucket", bucket, "--prefix", "/a/b/", "--json", str(src))
    assert quiet.err == "" and quiet.summary["files_skipped"] == 1
