"""One validated options object for a run, built once at the edge (CLI or operator).

Like s3transfer's ``TransferConfig``, bad values are rejected when the object is built, with a
one-line ``UsageError`` naming the option, so nothing is uploaded on bad input. Every field is
plain data: the object pickles into worker processes and its ``repr`` holds no secret.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from airflow_s3pput.content import ALL_TYPES, DEFAULT_GZIP_TYPES
from airflow_s3pput.errors import UsageError
from airflow_s3pput.etag import MIB
from airflow_s3pput.headers import header_params
from airflow_s3pput.modes import MODES

MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * 1024 * MIB
MAX_PARTS = 10_000
MAX_PROCESSES = 64
MAX_THREADS = 256
MAX_TIMEOUT = 3600.0

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$")


TRANSPORTS = ("auto", "crt", "boto3")


def default_processes() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def resolve_transport(transport: str) -> str:
    """``auto`` picks the CRT data plane when ``awscrt`` is installed, boto3 otherwise."""
    if transport != "auto":
        return transport
    from airflow_s3pput.crt import crt_available

    return "crt" if crt_available() else "boto3"


def default_concurrency(transport: str) -> tuple[int, int]:
    """(processes, threads) that suit the data plane.

    The CRT signs and sends in C, so one process with many requests in flight keeps up with the
    server; boto3 spends ~1.5 ms of Python CPU per request and needs a process per core.
    """
    if resolve_transport(transport) == "crt":
        return 1, 64
    return default_processes(), 16


@dataclass(frozen=True)
class ConnectionSettings:
    """How a worker process builds its S3 client. Secrets are kept out of ``repr``."""

    endpoint_url: str | None = None
    region: str | None = None
    secure: bool = True
    verify: bool | str = True
    profile: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    addressing_style: str = "auto"

    def __post_init__(self) -> None:
        if self.endpoint_url is not None and not re.match(r"^https?://[^/\s]+/?$", self.endpoint_url):
            raise UsageError(f"invalid --endpoint-url {self.endpoint_url!r}: expected http(s)://host[:port]")
        if not 1 <= self.max_attempts <= 20:
            raise UsageError("--retries must be between 0 and 19")
        # Written so that NaN fails too.
        if not (0 < self.connect_timeout <= MAX_TIMEOUT and 0 < self.read_timeout <= MAX_TIMEOUT):
            raise UsageError(f"timeouts (--connect-timeout, --read-timeout) must be in (0, {MAX_TIMEOUT:g}]")


@dataclass(frozen=True)
class UploadOptions:
    """Everything one upload needs. See the README's options table for each field."""

    bucket: str
    sources: tuple[str, ...]
    prefix: str = ""
    mode: str = "update"
    dry_run: bool = False
    limit: int | None = None
    content_type: str | None = None
    gzip: bool = False
    gzip_types: tuple[str, ...] = DEFAULT_GZIP_TYPES
    gzip_level: int = 9
    headers: tuple[str, ...] = ()
    grant: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    follow_symlinks: bool = False
    processes: int = 1
    threads: int = 64
    transport: str = "auto"
    multipart_threshold: int = 16 * MIB
    part_size: int = 16 * MIB
    connection: ConnectionSettings = field(default_factory=ConnectionSettings)
    #: ``update`` remembers the digests it computed (see ``digest_record``) and skips a file whose
    #: stat is unchanged without reading it; False: neither use nor write the record
    digest_cache: bool = True
    #: read and hash every file, ignoring remembered digests (and record the new ones)
    rehash: bool = False
    #: where the record lives; None: ``$S3PPUT_CACHE_DIR`` or the user's cache directory
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if not self.bucket:
            raise UsageError("--bucket is required")
        if not _BUCKET.match(self.bucket) or ".." in self.bucket:
            raise UsageError(f"invalid bucket name {self.bucket!r}")
        if ".." in self.prefix.split("/"):
            # Such keys escape their folder when someone syncs the bucket back to a disk.
            raise UsageError(f"invalid --prefix {self.prefix!r}: '..' is not allowed in keys")
        if self.mode not in MODES:
            raise UsageError(f"invalid --put {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.limit is not None and self.limit < 0:
            raise UsageError(f"--limit must be 0 or more, not {self.limit}")
        if self.transport not in TRANSPORTS:
            raise UsageError(
                f"invalid --transport {self.transport!r}: expected one of {', '.join(TRANSPORTS)}"
            )
        if not 1 <= self.processes <= MAX_PROCESSES:
            raise UsageError(f"--processes must be between 1 and {MAX_PROCESSES}, not {self.processes}")
        if not 1 <= self.threads <= MAX_THREADS:
            raise UsageError(f"--threads must be between 1 and {MAX_THREADS}, not {self.threads}")
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise UsageError(
                f"--part-size must be between {MIN_PART_SIZE // MIB} MiB and {MAX_PART_SIZE // MIB} MiB"
            )
        if not MIN_PART_SIZE <= self.multipart_threshold <= MAX_PART_SIZE:
            raise UsageError(
                f"--multipart-threshold must be between {MIN_PART_SIZE // MIB} MiB and "
                f"{MAX_PART_SIZE // MIB} MiB"
            )
        if not 1 <= self.gzip_level <= 9:
            raise UsageError("--gzip-level must be between 1 and 9")
        if self.content_type is not None and (
            "/" not in self.content_type or any(ord(c) < 32 or ord(c) == 127 for c in self.content_type)
        ):
            raise UsageError(f"invalid --content-type {self.content_type!r}")
        for gzip_type in self.gzip_types:
            if gzip_type != ALL_TYPES and "/" not in gzip_type:
                raise UsageError(f"invalid --gzip-type {gzip_type!r}: a MIME type or 'all'")
        if self.cache_dir is not None and (not self.cache_dir.strip() or "\0" in self.cache_dir):
            raise UsageError(f"invalid --cache-dir {self.cache_dir!r}")
        params = self.put_params()  # validates the headers and the --grant ACL
        if self.gzip and "ContentEncoding" in params:
            raise UsageError("--gzip sets Content-Encoding itself: drop the Content-Encoding header")
        if self.content_type and "ContentType" in params:
            raise UsageError("give the content type once: --content-type or a Content-Type header")

    def put_params(self) -> dict[str, Any]:
        """The validated extra PutObject arguments from ``--header`` and ``--grant``."""
        return header_params(self.headers, self.grant)

    def part_size_for(self, size: int) -> int:
        """The part size for a file: ours, grown when the file would need over 10,000 parts."""
        part = self.part_size
        while -(-size // part) > MAX_PARTS:
            part *= 2
        return part
