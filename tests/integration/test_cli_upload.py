"""``s3pput`` against a real SeaweedFS: what lands, put modes, options, output."""

from __future__ import annotations

import gzip
import hashlib
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CliRunner, list_keys, make_tree

TREE: dict[str, bytes | str] = {
    "index.html": "<html>hello</html>\n" * 50,
    "css/site.css": "body { color: red }\n" * 50,
    "data/a.json": '{"a": 1}\n',
    "data/empty.txt": b"",
    "img/logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "bin/blob": os.urandom(3000),
    "space dir/file with spaces.txt": "spaces\n",
    "unicodé/日本語 🎉.txt": "unicode\n",
    "a.txt": "a",
    "a/b.txt": "ab",
    "a-b": "a-b",
}


def expected_keys(prefix: str, tree: dict[str, Any] = TREE) -> set[str]:
    return {f"{prefix}{k}" for k in tree}


def body(client: Any, bucket: str, key: str) -> bytes:
    data: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


@pytest.mark.parametrize(
    ("prefix", "key_prefix"),
    [
        pytest.param("", "", id="no-prefix"),
        pytest.param("pre", "pre/", id="prefix"),
        pytest.param("pre/fix/", "pre/fix/", id="prefix-trailing-slash"),
    ],
)
def test_every_object_lands_with_its_bytes(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path, prefix: str, key_prefix: str
) -> None:
    src = make_tree(tmp_path / "src", TREE)
    run = cli("--bucket", bucket, "--prefix", prefix, "--json", str(src))
    assert run.code == 0, run.err
    assert run.summary["files_put"] == len(TREE)
    assert run.summary["bytes_put"] == sum(len(as_bytes(v)) for v in TREE.values())
    listed = list_keys(s3_client, bucket)
    assert set(listed) == expected_keys(key_prefix)
    for rel, content in TREE.items():
        key = key_prefix + rel
        data = as_bytes(content)
        assert body(s3_client, bucket, key) == data, key
        assert listed[key]["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_single_file_and_several_sources(cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path) -> None:
    one = make_tree(tmp_path / "one", {"x/1.txt": "1"})
    two = make_tree(tmp_path / "two", {"y/2.txt": "2"})
    single = make_tree(tmp_path / "three", {"solo.bin": "3"}) / "solo.bin"
    run = cli("--bucket", bucket, "--prefix", "p/", str(one), str(two), str(single))
    assert run.code == 0, run.err
    assert set(list_keys(s3_client, bucket)) == {"p/x/1.txt", "p/y/2.txt", "p/solo.bin"}
    assert body(s3_client, bucket, "p/solo.bin") == b"3"


# --- put modes ----------------------------------------------------------------------------------------


def _touch_changed(path: Path, content: bytes) -> None:
    stat = path.stat()
    path.write_bytes(content)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_update_mode(cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", TREE)
    first = cli("--bucket", bucket, "--json", str(src))
    assert first.summary["files_put"] == len(TREE)
    assert first.summary["put_reasons"] == {"new": len(TREE)}

    second = cli("--bucket", bucket, "--json", str(src))
    assert second.code == 0
    assert second.summary["files_put"] == 0
    assert second.summary["skipped"] == {"unchanged": len(TREE)}

    _touch_changed(src / "a.txt", b"A")  # same size, other bytes: only the ETag tells
    _touch_changed(src / "data/a.json", b'{"a": 2, "b": 3}\n')  # other size
    (src / "new.txt").write_text("new")
    third = cli("--bucket", bucket, "--json", str(src))
    assert third.code == 0
    assert third.summary["put_reasons"] == {"changed": 2, "new": 1}
    assert third.summary["skipped"] == {"unchanged": len(TREE) - 2}
    assert body(s3_client, bucket, "a.txt") == b"A"
    assert body(s3_client, bucket, "data/a.json") == b'{"a": 2, "b": 3}\n'


def test_add_mode_skips_existing_even_if_changed(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "old", "b.txt": "b"})
    assert cli("--bucket", bucket, "--put", "add", str(src)).code == 0
    _touch_changed(src / "a.txt", b"new content")
    (src / "c.txt").write_text("c")
    run = cli("--bucket", bucket, "--put=add", "--json", str(src))
    assert run.code == 0
    assert run.summary["put_reasons"] == {"new": 1}
    assert run.summary["skipped"] == {"exists": 2}
    assert body(s3_client, bucket, "a.txt") == b"old"
    assert body(s3_client, bucket, "c.txt") == b"c"


def test_stupid_mode_puts_all_again(cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a", "d/b.txt": "b"})
    assert cli("--bucket", bucket, str(src)).code == 0
    run = cli("--bucket", bucket, "--put", "stupid", "--json", str(src))
    assert run.code == 0
    assert run.summary["put_reasons"] == {"always": 2}
    assert run.summary["files_skipped"] == 0


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(("--gzip",), id="gzip"),
        pytest.param(("--multipart-threshold", "5MiB", "--part-size", "5MiB"), id="multipart"),
        pytest.param(
            ("--gzip", "--gzip-type", "all", "--multipart-threshold", "5MiB", "--part-size", "5MiB"),
            id="gzip-multipart",
        ),
    ],
)
def test_update_recognises_unchanged_gzip_and_multipart(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path, extra: tuple[str, ...]
) -> None:
    big = os.urandom(1024 * 1024) * 6 + os.urandom(1024 * 1024) * 6  # 12 MiB, ~2 MiB gzipped
    src = make_tree(tmp_path / "src", {"page.html": "<p>x</p>\n" * 500, "big.bin": big})
    first = cli("--bucket", bucket, "--json", *extra, str(src))
    assert first.code == 0, first.err
    assert first.summary["files_put"] == 2
    second = cli("--bucket", bucket, "--json", *extra, str(src))
    assert second.code == 0, second.err
    assert second.summary["skipped"] == {"unchanged": 2}
    assert second.summary["files_put"] == 0


# --- multipart --------------------------------------------------------------------------------------


def test_multipart_upload_lands_and_leaves_no_parts(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(12 * 1024 * 1024 + 123)
    src = make_tree(tmp_path / "src", {"big.bin": data, "small.txt": "s"})
    run = cli("--bucket", bucket, "--multipart-threshold", "5MiB", "--part-size", "5MiB", "--json", str(src))
    assert run.code == 0, run.err
    assert run.summary["bytes_put"] == len(data) + 1
    assert hashlib.md5(body(s3_client, bucket, "big.bin")).digest() == hashlib.md5(data).digest()
    etag = s3_client.head_object(Bucket=bucket, Key="big.bin")["ETag"].strip('"')
    assert etag.endswith("-3")
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


# --- dry run and limit ---------------------------------------------------------------------------


def test_dry_run_writes_nothing(cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a", "d/b.txt": "b"})
    run = cli("--bucket", bucket, "--prefix", "p", "--dry-run", str(src))
    assert run.code == 0, run.err
    assert list_keys(s3_client, bucket) == {}
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    lines = run.out.splitlines()
    assert f"would put {src / 'a.txt'} -> p/a.txt" in lines
    assert f"would put {src / 'd' / 'b.txt'} -> p/d/b.txt" in lines
    assert any(line.startswith("files would put") and line.split()[-1] == "2" for line in lines)
    assert any(line.startswith("seconds") for line in lines)


def test_dry_run_reports_skips(cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    assert cli("--bucket", bucket, str(src)).code == 0
    (src / "b.txt").write_text("b")
    run = cli("--bucket", bucket, "--dry-run", str(src))
    assert f"would skip {src / 'a.txt'} -> a.txt (unchanged)" in run.out
    assert f"would put {src / 'b.txt'} -> b.txt" in run.out
    assert set(list_keys(s3_client, bucket)) == {"a.txt"}


@pytest.mark.parametrize(
    "limit", [pytest.param(0, id="zero"), pytest.param(1, id="one"), pytest.param(7, id="seven")]
)
def test_limit_puts_exactly_n(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path, limit: int
) -> None:
    src = make_tree(tmp_path / "src", {f"d{i % 3}/f{i:02}.txt": str(i) for i in range(20)})
    run = cli("--bucket", bucket, "--limit", str(limit), "--threads", "8", "--json", str(src))
    assert run.code == 0, run.err
    assert run.summary["files_put"] == limit
    assert len(list_keys(s3_client, bucket)) == limit


def test_limit_counts_puts_not_skips(cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {f"f{i:02}.txt": str(i) for i in range(10)})
    assert cli("--bucket", bucket, "--limit", "4", str(src)).code == 0
    run = cli("--bucket", bucket, "--limit", "4", "--json", str(src))
    assert run.summary["files_put"] == 4
    assert len(list_keys(s3_client, bucket)) == 8


# --- what is stored -------------------------------------------------------------------------------


def head(client: Any, bucket: str, key: str) -> dict[str, Any]:
    result: dict[str, Any] = client.head_object(Bucket=bucket, Key=key)
    return result


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            (),
            {
                "index.html": "text/html",
                "css/site.css": "text/css",
                "data/a.json": "application/json",
                "img/logo.png": "image/png",
                "bin/blob": "application/octet-stream",
            },
            id="guessed",
        ),
        pytest.param(
            ("--content-type", "text/x-custom"),
            {"index.html": "text/x-custom", "img/logo.png": "text/x-custom", "bin/blob": "text/x-custom"},
            id="override",
        ),
    ],
)
def test_content_type(
    cli: CliRunner,
    s3_client: Any,
    bucket: str,
    tmp_path: Path,
    args: tuple[str, ...],
    expected: dict[str, str],
) -> None:
    src = make_tree(tmp_path / "src", TREE)
    assert cli("--bucket", bucket, *args, str(src)).code == 0
    for key, content_type in expected.items():
        assert head(s3_client, bucket, key)["ContentType"] == content_type, key


@pytest.mark.parametrize(
    ("args", "gzipped"),
    [
        pytest.param(
            ("--gzip",), {k for k in TREE if k.endswith((".html", ".css", ".json", ".txt"))}, id="text-types"
        ),
        pytest.param(("--gzip", "--gzip-type", "image/png"), {"img/logo.png"}, id="custom-type"),
        pytest.param(("--gzip", "--gzip-type", "all"), set(TREE), id="all"),
        pytest.param((), set(), id="off"),
    ],
)
def test_gzip(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path, args: tuple[str, ...], gzipped: set[str]
) -> None:
    src = make_tree(tmp_path / "src", TREE)
    run = cli("--bucket", bucket, *args, str(src))
    assert run.code == 0, run.err
    assert set(list_keys(s3_client, bucket)) == set(TREE)  # key names unchanged
    for rel, content in TREE.items():
        response = s3_client.get_object(Bucket=bucket, Key=rel)
        stored = response["Body"].read()
        if rel in gzipped:
            assert response.get("ContentEncoding") == "gzip", rel
            assert gzip.decompress(stored) == as_bytes(content), rel
        else:
            assert response.get("ContentEncoding") in (None, ""), rel
            assert stored == as_bytes(content), rel


def test_headers_land(cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path) -> None:
    big = os.urandom(6 * 1024 * 1024)
    src = make_tree(tmp_path / "src", {"a.txt": "a", "big.bin": big})
    run = cli(
        "--bucket",
        bucket,
        "--header",
        "Cache-Control: max-age=3600, public",
        "--header",
        'Content-Disposition: attachment; filename="x y.txt"',
        "--header",
        "Content-Language: de-CH",
        "--header",
        "x-amz-meta-owner: team a",
        "--header",
        "X-Amz-Meta-Build:42",
        "--multipart-threshold",
        "5MiB",
        "--part-size",
        "5MiB",
        str(src),
    )
    assert run.code == 0, run.err
    for key in ("a.txt", "big.bin"):  # single PUT and multipart alike
        meta = head(s3_client, bucket, key)
        assert meta["CacheControl"] == "max-age=3600, public", key
        assert meta["ContentDisposition"] == 'attachment; filename="x y.txt"', key
        assert meta["ContentLanguage"] == "de-CH", key
        assert meta["Metadata"] == {"owner": "team a", "build": "42"}, key


def test_include_exclude(cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", TREE)
    # aws cli's order: exclude everything, take back .txt and .html, then leave out a/.
    filters = ["--exclude", "*", "--include", "*.txt", "--include", "*.html", "--exclude", "a/*"]
    run = cli("--bucket", bucket, *filters, str(src))
    assert run.code == 0, run.err
    assert set(list_keys(s3_client, bucket)) == {
        "index.html",
        "data/empty.txt",
        "space dir/file with spaces.txt",
        "unicodé/日本語 🎉.txt",
        "a.txt",
    }


@pytest.mark.parametrize("processes", [pytest.param("1", id="one"), pytest.param("2", id="two")])
def test_processes(cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path, processes: str) -> None:
    tree = {f"d{i % 4}/f{i:03}.txt": f"file {i}" for i in range(60)}
    src = make_tree(tmp_path / "src", tree)
    run = cli("--bucket", bucket, "--processes", processes, "--threads", "4", "--json", str(src))
    assert run.code == 0, run.err
    assert run.summary["files_put"] == 60
    listed = list_keys(s3_client, bucket)
    assert set(listed) == set(tree)
    for key, content in tree.items():
        assert listed[key]["ETag"].strip('"') == hashlib.md5(content.encode()).hexdigest()
    again = cli("--bucket", bucket, "--processes", processes, "--json", str(src))
    assert again.summary["skipped"] == {"unchanged": 60}


# --- output ----------------------------------------------------------------------------------------


def test_json_summary(cli: CliRunner, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "aa", "b.txt": "bbb"})
    (src / "broken").symlink_to(tmp_path / "missing")
    before = time.time()
    run = cli("--bucket", bucket, "--json", str(src))
    after = time.time()
    assert run.code == 1
    summary = run.summary
    assert summary["files_put"] == 2
    assert summary["bytes_put"] == 5
    assert summary["files_failed"] == 1
    assert summary["failures"][0]["key"] == "broken"
    assert summary["dry_run"] is False
    # The run's own clock readings lie within ours, and its seconds are their difference.
    started, finished = (datetime.fromisoformat(summary[k]).timestamp() for k in ("started", "finished"))
    # ISO timestamps to the millisecond: allow for the rounding at both ends
    assert before - 0.001 <= started < finished <= after + 0.001
    assert summary["seconds"] == pytest.approx(finished - started, abs=0.002) and summary["seconds"] > 0


def test_quiet_prints_nothing_on_success(cli: CliRunner, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    run = cli("--bucket", bucket, "--quiet", str(src))
    assert (run.code, run.out, run.err) == (0, "", "")
    dry = cli("--bucket", bucket, "--quiet", "--dry-run", str(src))
    assert (dry.code, dry.out, dry.err) == (0, "", "")


def test_verbose_prints_each_file(cli: CliRunner, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a", "d/b.txt": "b"})
    run = cli("--bucket", bucket, "--verbose", str(src))
    assert run.code == 0
    assert f"put {src / 'a.txt'} -> a.txt" in run.out.splitlines()
    assert f"put {src / 'd' / 'b.txt'} -> d/b.txt" in run.out.splitlines()
    again = cli("--bucket", bucket, "-v", str(src))
    assert f"skip (unchanged) {src / 'a.txt'} -> a.txt" in again.out.splitlines()


def test_summary_table(cli: CliRunner, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a", "b.txt": "b"})
    run = cli("--bucket", bucket, str(src))
    names = [line.split("  ")[0] for line in run.out.splitlines()]
    assert names == [
        "files put",
        "files skipped",
        "files failed",
        "bytes put",
        "seconds",
        "files/s",
        "bytes/s",
    ]


# --- per-file failures -----------------------------------------------------------------------------


def test_bad_files_fail_alone_exit_1(cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a", "z.txt": "z"})
    (src / "broken").symlink_to(tmp_path / "missing")
    os.mkfifo(src / "fifo")
    run = cli("--bucket", bucket, str(src))
    assert run.code == 1
    assert set(list_keys(s3_client, bucket)) == {"a.txt", "z.txt"}
    assert "files failed   2" in run.out
    assert "FAILED broken: broken symlink" in run.out
    assert any(line.startswith("FAILED fifo: not a regular file") for line in run.out.splitlines())
    failed_lines = [line for line in run.err.splitlines() if line.startswith("s3pput: failed ")]
    assert len(failed_lines) == 2
    assert "Traceback" not in run.err
