"""Learn what the bucket holds for a group of keys by listing, not one HEAD per key.

Keys are grouped by their parent "directory" and each directory is listed with
``Delimiter="/"``, starting just before the group's first key and stopping after its last one.
Listing directory by directory, instead of one flat listing of the prefix, is what keeps this
right on servers that list in tree order rather than S3's lexicographic order (SeaweedFS
does): within one directory both orders agree. Memory holds only the keys asked for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import Executor
from typing import Any

from airflow_s3pput.modes import RemoteObject


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
        for obj in contents:
            key = obj["Key"]
            if key in wanted:
                found[key] = RemoteObject(int(obj["Size"]), str(obj.get("ETag", "")).strip('"'))
        if not page.get("IsTruncated") or (contents and contents[-1]["Key"] > last):
            return found
        kwargs.pop("StartAfter", None)
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
