"""Check what a run left under its prefix, so that a fast but broken run cannot win."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Listing:
    objects: int
    bytes: int
    modified: dict[str, Any]  # key -> LastModified


def list_prefix(client: Any, bucket: str, prefix: str) -> Listing:
    objects = size = 0
    modified: dict[str, Any] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
        for obj in page.get("Contents", []):
            objects += 1
            size += int(obj["Size"])
            modified[obj["Key"]] = obj["LastModified"]
    return Listing(objects, size, modified)


def rewritten(before: Listing, after: Listing) -> int:
    """How many keys were written again between two listings (their LastModified moved)."""
    return sum(1 for key, stamp in after.modified.items() if before.modified.get(key) != stamp)
