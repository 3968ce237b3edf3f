"""The "what you'd write yourself" baseline: boto3, one client, a 16-thread pool, ``upload_file``.

Usage: ``boto3_upload.py SOURCE_DIR BUCKET PREFIX [--sync]``; endpoint and keys come from the
standard AWS environment variables (``AWS_ENDPOINT_URL`` and friends).

``--sync`` lists the prefix once and skips a file whose size matches and, for a single-part
object, whose MD5 matches the ETag: the sync a careful engineer writes in an afternoon. Client
defaults are kept except the connection pool, sized to the threads (otherwise urllib3 drops
connections and logs a warning per request).
"""

from __future__ import annotations

import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

THREADS = 16


def walk(root: str) -> list[tuple[str, str, int]]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            found.append((path, os.path.relpath(path, root).replace(os.sep, "/"), os.path.getsize(path)))
    return found


def md5_of(path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str]) -> int:
    sync = "--sync" in argv
    source, bucket, prefix = (a for a in argv if a != "--sync")
    prefix = prefix.strip("/") + "/"
    client = boto3.client("s3", config=Config(max_pool_connections=THREADS))
    files = walk(source)
    existing: dict[str, tuple[int, str]] = {}
    if sync:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                existing[obj["Key"]] = (obj["Size"], obj["ETag"].strip('"'))

    def upload(item: tuple[str, str, int]) -> int:
        path, rel, size = item
        key = prefix + rel
        if key in existing:
            remote_size, etag = existing[key]
            if remote_size == size and ("-" in etag or etag == md5_of(path)):
                return 0
        client.upload_file(path, bucket, key)
        return 1

    with ThreadPoolExecutor(THREADS) as pool:
        uploaded = sum(pool.map(upload, files))
    print(f"uploaded {uploaded} of {len(files)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
