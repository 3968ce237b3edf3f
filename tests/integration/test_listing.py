"""How many listing requests `add` and `update` spend to learn what the bucket holds."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput import engine, remote_index
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.remote_index import FLAT_LISTING_MIN_DIRS
from airflow_s3pput.transport.boto3_transport import Boto3Transport
from airflow_s3pput.transport.crt_transport import CrtTransport
from tests.helpers import RequestLog, make_tree

from .test_engine_s3 import opts

#: more directories than FLAT_LISTING_MIN_DIRS, a few files each
WIDE = {f"d{i:02d}/f{j}.txt": f"{i}-{j}" for i in range(FLAT_LISTING_MIN_DIRS + 10) for j in range(3)}


def test_an_empty_prefix_is_not_listed_file_by_file(
    logged_client: tuple[Any, RequestLog], bucket: str, tmp_path: Path
) -> None:
    client, log = logged_client
    src = make_tree(tmp_path / "src", WIDE)
    stats = engine.upload(opts(bucket, src, prefix="fresh"), transport=Boto3Transport(client, bucket))
    assert stats.files_put == len(WIDE)
    assert log.counts["ListObjectsV2"] == 1  # the bucket check found the prefix empty


def rerun_with_one_change(
    logged_client: tuple[Any, RequestLog], bucket: str, tree: dict[str, str], root: Path, changed: str
) -> None:
    """Upload ``tree``, change the file ``changed``, clear the request log and upload again:
    the second run must put exactly that file."""
    client, log = logged_client
    src = make_tree(root, tree)
    engine.upload(opts(bucket, src, prefix=root.name), transport=Boto3Transport(client, bucket))
    (src / changed).write_text("changed, and longer")
    log.calls.clear()
    stats = engine.upload(opts(bucket, src, prefix=root.name), transport=Boto3Transport(client, bucket))
    assert stats.put_reasons == {"changed": 1}
    assert stats.skipped == {"unchanged": len(tree) - 1}


def test_many_small_directories_are_listed_flat_and_still_compared(
    logged_client: tuple[Any, RequestLog], bucket: str, tmp_path: Path
) -> None:
    rerun_with_one_change(logged_client, bucket, WIDE, tmp_path / "wide", "d07/f1.txt")
    log = logged_client[1]
    # one flat listing (after one request that finds too many subdirectories to list side by
    # side), not one listing per directory; the bucket check lists nothing
    assert log.counts["ListObjectsV2"] == 2, log.counts


def test_a_crowded_prefix_falls_back_to_listing_directory_by_directory(
    logged_client: tuple[Any, RequestLog], bucket: str, tmp_path: Path, monkeypatch: Any
) -> None:

    client, log = logged_client
    src = make_tree(tmp_path / "src", WIDE)
    engine.upload(opts(bucket, src, prefix="crowd"), transport=Boto3Transport(client, bucket))
    monkeypatch.setattr(remote_index, "FLAT_LISTING_MAX_OBJECTS", len(WIDE) // 2)
    monkeypatch.setattr(remote_index, "LIST_PAGE_KEYS", len(WIDE) // 3)  # the flat listing stops mid-way
    log.calls.clear()
    stats = engine.upload(opts(bucket, src, prefix="crowd"), transport=Boto3Transport(client, bucket))
    assert stats.skipped == {"unchanged": len(WIDE)}
    assert log.counts["ListObjectsV2"] >= 1 + FLAT_LISTING_MIN_DIRS


def test_the_crt_client_lists_a_crowded_prefix_directory_by_directory(
    s3_env: Any, bucket: str, tmp_path: Path, monkeypatch: Any
) -> None:
    from collections import Counter

    from airflow_s3pput.transport.crt_http import CrtSender

    calls: Counter[str] = Counter()
    original = CrtSender.request

    def counted(self: CrtSender, *args: Any, **kwargs: Any) -> Any:
        calls[kwargs.get("operation", "")] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CrtSender, "request", counted)
    src = make_tree(tmp_path / "src", WIDE)
    connection = ConnectionSettings(endpoint_url=s3_env.endpoint_url)
    options = opts(bucket, src, prefix="crowd", transport="crt", connection=connection)
    assert engine.upload(options).files_put == len(WIDE)
    monkeypatch.setattr(remote_index, "FLAT_LISTING_MAX_OBJECTS", len(WIDE) // 2)
    monkeypatch.setattr(remote_index, "LIST_PAGE_KEYS", len(WIDE) // 3)
    calls.clear()
    stats = engine.upload(options)
    assert stats.failed == 0, stats.failures
    assert stats.skipped == {"unchanged": len(WIDE)}
    assert calls["ListObjectsV2"] >= 1 + FLAT_LISTING_MIN_DIRS  # by directory, through the CRT


#: three areas of ten directories, three files each: 90 files
AREAS = {f"a{a}/d{d}/f{f}.txt": f"{a}{d}{f}" for a in range(3) for d in range(10) for f in range(3)}


def test_a_run_lists_its_prefix_once_for_all_its_lookup_groups(
    logged_client: tuple[Any, RequestLog], bucket: str, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(engine, "LOOKUP_GROUP", 8)  # 12 groups
    rerun_with_one_change(logged_client, bucket, AREAS, tmp_path / "areas", "a2/d9/f2.txt")
    log = logged_client[1]
    # "areas/" listed while the walk starts: its 3 subdirectories side by side
    assert log.counts["ListObjectsV2"] == 1 + 3, log.counts


def test_a_prefix_without_subdirectories_is_listed_in_one_request(
    logged_client: tuple[Any, RequestLog], bucket: str, tmp_path: Path
) -> None:
    flat = {f"f{i:02d}.txt": str(i) for i in range(25)}
    rerun_with_one_change(logged_client, bucket, flat, tmp_path / "flat", "f07.txt")
    # the one page that lists "flat/" by directory: it holds everything
    assert logged_client[1].counts["ListObjectsV2"] == 1, logged_client[1].counts


def test_a_crowded_prefix_is_not_listed_flat_twice(
    logged_client: tuple[Any, RequestLog], bucket: str, tmp_path: Path, monkeypatch: Any
) -> None:

    monkeypatch.setattr(engine, "LOOKUP_GROUP", 8)  # 12 groups over 3-4 directories
    monkeypatch.setattr(remote_index, "FLAT_LISTING_MIN_DIRS", 3)
    monkeypatch.setattr(remote_index, "FLAT_LISTING_MAX_OBJECTS", 40)  # an area (30) fits, "areas/" does not
    rerun_with_one_change(logged_client, bucket, AREAS, tmp_path / "areas", "a2/d9/f2.txt")
    log = logged_client[1]
    flat_starts = [
        params["query_string"]["prefix"]
        for name, params in log.calls
        if name == "ListObjectsV2"
        and not {"delimiter", "continuation-token", "start-after"} & set(params["query_string"])
    ]
    assert "areas/a0/d0/" in flat_starts  # the areas were listed flat, side by side
    assert len(flat_starts) == len(set(flat_starts)), flat_starts


@pytest.mark.parametrize("limit", [10_000, len(AREAS) - 1], ids=["fits", "too-many"])
def test_a_split_listing_finds_what_a_sequential_one_finds(
    s3_client: Any, bucket: str, monkeypatch: Any, limit: int
) -> None:
    from airflow_s3pput import remote_index

    keys = [f"p/{key}" for key in AREAS] + ["p/top.txt", "p2/outside"]
    for key in keys:
        s3_client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    monkeypatch.setattr(remote_index, "FLAT_LISTING_MAX_OBJECTS", limit)
    monkeypatch.setattr(remote_index, "LIST_PAGE_KEYS", 7)  # several pages per subdirectory
    with ThreadPoolExecutor(4) as executor:
        split = remote_index._list_flat(Boto3Transport(s3_client, bucket), "p/", executor)
    sequential = remote_index._list_flat(Boto3Transport(s3_client, bucket), "p/")
    assert split == sequential
    if limit < len(AREAS):
        assert split is None
    else:
        assert split is not None and set(split) == {key for key in keys if key.startswith("p/")}


def test_the_crt_lists_awkward_keys_as_botocore_does(s3_server: Any, s3_client: Any, bucket: str) -> None:
    """The CRT transport reads its pages itself (URL-encoded keys, prefixes, continuation);
    the boto3 transport gets botocore's reading. Both must give the same pages."""
    odd = ["p/a & b <c>.txt", "p/é/ü", "p/x+y%20z", "p/sp ace/t", 'p/"quoted"', "p/d/" + "long" * 50]
    for key in odd:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"x" * len(key))
    crt = CrtTransport(s3_server.connection(), bucket)
    boto3 = Boto3Transport(s3_client, bucket)
    try:
        for kwargs in ({}, {"delimiter": "/"}, {"max_keys": 2}):
            assert crt.list_page("p/", **kwargs) == boto3.list_page("p/", **kwargs)
        keys: list[str] = []
        token: str | None = None
        while True:
            page = crt.list_page("p/", token=token, max_keys=2)
            keys += [obj.key for obj in page.objects]
            token = page.next_token
            if token is None:
                break
    finally:
        crt.close()
    assert sorted(keys) == sorted(odd)
