"""The upload engine: walk -> list what exists -> put in parallel -> count.

``upload(options)`` is the whole job for the CLI and for one Airflow batch (``key_range``).
It streams: the walk is consumed a group at a time, each group's remote state is learnt by
listing, and at most ``in_flight_limit`` files are queued to the workers, so memory stays flat
however many files SOURCE holds.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from airflow_s3pput.crt_client import CrtS3Client, open_crt_client
from airflow_s3pput.errors import UsageError
from airflow_s3pput.modes import RemoteObject, get_mode
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.pool import Dispatcher, make_dispatcher
from airflow_s3pput.putter import MAX_PART_WORKERS, PutTask, describe_error
from airflow_s3pput.remote import RemoteIndex
from airflow_s3pput.s3client import make_client, make_session
from airflow_s3pput.stats import PutResult, Stats, StatsCollector
from airflow_s3pput.walker import FileEntry, KeyRange, Selection, WalkError, check_sources, join_key, walk

#: files whose remote state one listing round covers
LOOKUP_GROUP = 1000
#: directories listed at once
LISTING_THREADS = 8

ResultCallback = Callable[[PutResult], None]
T = TypeVar("T")


def selection_of(options: UploadOptions) -> Selection:
    return Selection(options.include, options.exclude, options.follow_symlinks)


def upload(
    options: UploadOptions,
    *,
    key_range: KeyRange = KeyRange(),
    on_result: ResultCallback | None = None,
    client: Any = None,
) -> Stats:
    """Upload what ``options`` selects (within ``key_range``) and return the run's ``Stats``.

    Raises ``UsageError`` (before anything is uploaded) for bad sources or an unusable bucket.
    ``client`` replaces the S3 clients everywhere and keeps the work in this process (tests).
    """
    check_sources(options.sources)
    session = crt_client = None
    if client is not None:  # an injected client (tests, moto) must serve every request
        options = dataclasses.replace(options, transport="boto3", processes=1)
    else:
        crt_client, session = connect(options)
        client = crt_client
    try:
        # First: it turns a bad endpoint or credentials into one line.
        prefix_empty = check_bucket(options, client, session)
        if client is None:
            client = make_client(options.connection, options.threads + MAX_PART_WORKERS, session)
        dispatcher = make_dispatcher(options, client, session)
        try:
            run = _Run(options, client, dispatcher, on_result, prefix_empty=prefix_empty)
            run.feed(walk(options.sources, options.prefix, selection_of(options), key_range))
            return run.collector.freeze()
        finally:
            dispatcher.close()
    finally:
        if crt_client is not None:
            crt_client.close()


class _Run:
    def __init__(
        self,
        options: UploadOptions,
        client: Any,
        dispatcher: Dispatcher,
        on_result: ResultCallback | None,
        *,
        prefix_empty: bool = False,
    ) -> None:
        self.options = options
        self.client = client
        self.mode = get_mode(options.mode)
        # Under an empty prefix every key is new: a listing could only say so, slowly.
        self.list_remote = self.mode.needs_listing and not prefix_empty
        self.dispatcher = dispatcher
        self.on_result = on_result
        self.collector = StatsCollector(dry_run=options.dry_run)
        self.pending: dict[Future[list[PutResult]], list[PutTask]] = {}
        self.in_flight = 0
        self.in_flight_limit = options.processes * options.threads * 4
        self.listers = ThreadPoolExecutor(LISTING_THREADS, thread_name_prefix="s3pput-list")
        self.remote = RemoteIndex(client, options.bucket, self.listers)
        if self.list_remote:
            self.remote.prefetch(join_key(options.prefix, ""))

    def record(self, result: PutResult) -> None:
        self.collector.add(result)
        if self.on_result is not None:
            self.on_result(result)

    def room(self) -> int:
        room = self.in_flight_limit - self.in_flight
        if self.options.limit is not None:
            room = min(room, self.options.limit - self.collector.files_put - self.in_flight)
        return room

    def feed(self, items: Iterator[FileEntry | WalkError]) -> None:
        try:
            self._feed(items)
        finally:
            self.remote.close()
            self.listers.shutdown(wait=True)

    def _feed(self, items: Iterator[FileEntry | WalkError]) -> None:
        # With --limit, send files one by one so that no more than the limit are ever put.
        chunk = 1 if self.options.limit is not None else self.dispatcher.chunk_size
        for group in _batched(items, LOOKUP_GROUP):
            for tasks in _batched(iter(self._tasks(group)), chunk):
                while self.room() < len(tasks):
                    if not self.pending:
                        return  # the limit is reached
                    self._drain(block=True)
                self.pending[self.dispatcher.submit(tasks)] = tasks
                self.in_flight += len(tasks)
            self._drain(block=False)
        while self.pending:
            self._drain(block=True)

    def _tasks(self, group: list[FileEntry | WalkError]) -> list[PutTask]:
        entries = []
        for item in group:
            if isinstance(item, WalkError):
                self.record(PutResult(item.path, item.key, "fail", error=item.message))
            else:
                entries.append(item)
        remote: dict[str, RemoteObject] = {}
        if self.list_remote and entries:
            try:
                remote = self.remote.lookup(e.key for e in entries)
            except Exception as exc:  # noqa: BLE001 - without the listing we cannot decide
                message = f"cannot list existing objects: {describe_error(exc)}"
                for entry in entries:
                    self.record(PutResult(entry.path, entry.key, "fail", error=message))
                return []
        return [PutTask(e.path, e.key, e.size, e.mtime_ns, remote.get(e.key)) for e in entries]

    def _drain(self, *, block: bool) -> None:
        if not self.pending:
            return
        done, _ = wait(self.pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            tasks = self.pending.pop(future)
            self.in_flight -= len(tasks)
            try:
                results = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. a worker process killed: its files failed
                message = f"worker failed: {describe_error(exc)}"
                results = [PutResult(t.path, t.key, "fail", error=message) for t in tasks]
            for result in results:
                self.record(result)


def _batched(items: Iterator[T], size: int) -> Iterator[list[T]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


def connect(options: UploadOptions) -> tuple[CrtS3Client | None, Any]:
    """The run's CRT client when it needs no boto3 session (see ``crt_client``), else the boto3
    session every client of the run is made from; a bad profile or endpoint is one line."""
    try:
        crt_client = open_crt_client(options)
        return crt_client, None if crt_client is not None else make_session(options.connection)
    except Exception as exc:  # noqa: BLE001 - translated to one line
        raise UsageError(bucket_error(exc, options.bucket, _where(options))) from None


def _where(options: UploadOptions) -> str:
    return options.connection.endpoint_url or "AWS S3"


def check_bucket(options: UploadOptions, client: Any = None, session: Any = None) -> bool:
    """Fail with one line, before any upload, if the bucket is missing or not usable.

    Some S3-compatible servers create a bucket on the first PUT, so a missing bucket is found
    here by HeadBucket rather than by a 404 from the PUT. Writability is checked by starting and
    aborting a multipart upload, which leaves no object behind; a dry run writes nothing.

    Returns whether the prefix is known to hold no object yet: then there is nothing to list.
    The check retries less than the run, so that a wrong endpoint is reported quickly: it uses
    a client of its own unless ``client`` is an injected one (tests).
    """
    bucket = options.bucket
    where = _where(options)
    fast = dataclasses.replace(options.connection, max_attempts=min(options.connection.max_attempts, 3))
    own_client = None
    try:
        if isinstance(client, CrtS3Client):
            client = own_client = CrtS3Client(fast, bucket)
        elif client is None:
            client = make_client(fast, session=session)
        client.head_bucket(Bucket=bucket)
        prefix_empty = False
        if get_mode(options.mode).needs_listing:
            page = client.list_objects_v2(Bucket=bucket, Prefix=join_key(options.prefix, ""), MaxKeys=1)
            prefix_empty = not page.get("Contents") and not page.get("CommonPrefixes")
        if not options.dry_run:
            probe = join_key(options.prefix, f".s3pput-write-check-{uuid.uuid4().hex}")
            upload_id = client.create_multipart_upload(Bucket=bucket, Key=probe)["UploadId"]
            client.abort_multipart_upload(Bucket=bucket, Key=probe, UploadId=upload_id)
    except Exception as exc:  # noqa: BLE001 - translated to one line below
        raise UsageError(bucket_error(exc, bucket, where)) from None
    finally:
        if own_client is not None:
            own_client.close()
    return prefix_empty


def bucket_error(exc: Exception, bucket: str, where: str) -> str:
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ProfileNotFound,
        SSLError,
    )

    if isinstance(exc, ProfileNotFound):
        return f"AWS profile {exc.kwargs.get('profile')!r} not found in the AWS config files"
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or a role"
    if isinstance(exc, SSLError):
        return (
            f"TLS certificate of {where} is not trusted "
            "(use --ca-bundle, or --no-verify-ssl at your own risk)"
        )
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return f"cannot reach {where}: {type(exc).__name__}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchBucket") or status == 404:
            return f"bucket {bucket!r} does not exist at {where}"
        if code in ("301", "PermanentRedirect", "AuthorizationHeaderMalformed") or status == 301:
            region = (
                exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
            )
            hint = f" (it is in {region})" if region else ""
            return f"bucket {bucket!r} is in another region{hint}: pass --region"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            return f"{where} rejected the credentials ({code})"
        if code in ("403", "AccessDenied") or status == 403:
            return (
                f"access to bucket {bucket!r} at {where} denied: check the credentials and their permissions"
            )
    return f"bucket {bucket!r} at {where} is not usable: {describe_error(exc)}"


from airflow_s3pput.planner import plan as plan  # noqa: E402 - the stages, beside upload
from airflow_s3pput.stats import summarize as summarize  # noqa: E402
