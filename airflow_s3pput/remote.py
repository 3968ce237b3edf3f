"""Learn what the bucket holds for a group of keys by listing, not one HEAD per key.

A group of keys spread over many directories is looked up with one flat listing of their
common prefix, when that holds at most a few thousand objects (order does not matter there:
the whole prefix is read). Otherwise keys are grouped by their parent "directory" and each
directory is listed with ``Delimiter="/"``, starting just before the group's first key and
stopping after its last one: within one directory, servers that list in tree order rather than
S3's lexicographic order (SeaweedFS does) agree with S3, so stopping early is safe there.
Memory holds only the keys asked for.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import Executor
from typing import Any

from airflow_s3pput.modes import RemoteObject

#: a group spread over this many directories is looked up with one flat listing of their
#: common prefix (1,000 keys a request) instead of one listing per directory ...
FLAT_LISTING_MIN_DIRS = 20
#: ... unless that prefix holds more than this many pages of objects
FLAT_LISTING_MAX_PAGES = 10
#: objects a listing request asks for (S3's maximum)
LIST_PAGE_KEYS = 1000


def parent_prefix(key: str) -> str:
    cut = key.rfind("/")
    return key[: cut + 1] if cut >= 0 else ""


def lookup(
    client: Any, bucket: str, keys: Iterable[str], executor: Executor | None = None
) -> dict[str, RemoteObject]:
    """Return the listed size and ETag of each of ``keys`` that exists in ``bucket``.

    With an ``executor``, directories are listed concurrently (boto3 clients are thread-safe):
    a tree of many small folders is otherwise a chain of round trips.
    """
    by_dir: dict[str, set[str]] = defaultdict(set)
    for key in keys:
        by_dir[parent_prefix(key)].add(key)
    if len(by_dir) >= FLAT_LISTING_MIN_DIRS:
        wanted = set().union(*by_dir.values())
        flat = _list_flat(client, bucket, _common_dir(by_dir), wanted)
        if flat is not None:
            return flat
    found: dict[str, RemoteObject] = {}
    if executor is None or len(by_dir) == 1:
        listings: Iterable[dict[str, RemoteObject]] = (
            _list_dir(client, bucket, prefix, wanted) for prefix, wanted in by_dir.items()
        )
    else:
        listings = executor.map(lambda item: _list_dir(client, bucket, *item), by_dir.items())
    for listing in listings:
        found.update(listing)
    return found


def _common_dir(prefixes: Iterable[str]) -> str:
    common = os.path.commonprefix(list(prefixes))  # noqa: RUF071 - keys are strings, not paths
    return common[: common.rfind("/") + 1]


def _list_flat(client: Any, bucket: str, prefix: str, wanted: set[str]) -> dict[str, RemoteObject] | None:
    """One listing of everything under ``prefix``, or ``None`` if it holds too much for that."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": LIST_PAGE_KEYS}
    found: dict[str, RemoteObject] = {}
    for _ in range(FLAT_LISTING_MAX_PAGES):
        page = client.list_objects_v2(**kwargs)
        _collect(page, wanted, found)
        if not page.get("IsTruncated"):
            return found
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    return None


def _collect(page: dict[str, Any], wanted: set[str], found: dict[str, RemoteObject]) -> None:
    for obj in page.get("Contents", []):
        if obj["Key"] in wanted:
            found[obj["Key"]] = RemoteObject(int(obj["Size"]), str(obj.get("ETag", "")).strip('"'))


def _list_dir(client: Any, bucket: str, prefix: str, wanted: set[str]) -> dict[str, RemoteObject]:
    first, last = min(wanted), max(wanted)
    # StartAfter is exclusive: start from a string just below the first key.
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
    start_after = first[:-1]
    if len(start_after) > len(prefix):
        kwargs["StartAfter"] = start_after
    found: dict[str, RemoteObject] = {}
    while True:
        page = client.list_objects_v2(**kwargs)
        contents = page.get("Contents", [])
        _collect(page, wanted, found)
        if not page.get("IsTruncated") or (contents and contents[-1]["Key"] > last):
            return found
        kwargs.pop("StartAfter", None)
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
