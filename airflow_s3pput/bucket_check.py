"""Whether the bucket can take a run, found before anything is uploaded, in one line if not.

``BucketCheck`` sends HeadBucket beside the walk and the listing, and a write check beside the
first PUTs; ``Gate`` is the order a run takes them in; ``check_bucket`` is the same check for
callers that check before a run (the Airflow plan task). An endpoint that does not answer is
asked again for a bounded time (``PATIENCE``), so that a server restarting or a load balancer's
blip passes; ``bucket_error`` turns what is left into the one line each front end spells.
"""

from __future__ import annotations

import contextlib
import enum
import os
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

from airflow_s3pput.errors import S3Error, Unavailable, UsageError, describe_error
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.stats import PutResult
from airflow_s3pput.transport import (
    LATER_CODES,
    ListPage,
    OpenUpload,
    RetryPolicy,
    Transport,
    is_transient,
    open_transport,
)
from airflow_s3pput.transport.interface import iso_seconds
from airflow_s3pput.walker import join_key

if TYPE_CHECKING:
    from airflow_s3pput.upload_journal import UploadJournal

T = TypeVar("T")


def connect(options: UploadOptions) -> Transport:
    """The run's transport; credentials or a profile that cannot be resolved are one line."""
    try:
        return open_transport(options)
    except S3Error as exc:
        raise bucket_error(exc, options.bucket, _where(options)) from None


#: what the transports name a connection lost before any answer: the boto3 transport passes
#: botocore's error class names on, the CRT its error names
_NO_ANSWER_CODES = frozenset(
    {S3Error.UNREACHABLE, S3Error.TIMEOUT, "ConnectionClosedError", "HTTPClientError", "ProxyConnectionError"}
)


def transient(exc: S3Error) -> bool:
    """Whether asking again later may get another answer: what the transports retry
    (``is_transient``: no answer, 5xx, 429), and, for the check's longer wait, a "later" code or
    a 408 whatever else the answer says and a connection lost under another name. A 4xx about
    the bucket, the credentials or the request gets the same answer however often it is asked."""
    code = exc.code
    if is_transient(exc) or code in _NO_ANSWER_CODES or code in LATER_CODES or exc.status == 408:
        return True
    lost = "TIMEOUT" in code or "CONNECTION_CLOSED" in code
    return exc.status is None and code.startswith("AWS_") and lost


#: how long the check keeps asking an endpoint that does not answer: 15 s in all, its waits
#: capped low so that the end of an outage is soon seen
PATIENCE = RetryPolicy(0, backoff_cap=4.0, budget=15.0, retryable=transient)


def _where(options: UploadOptions) -> str:
    return options.connection.endpoint_url or "AWS S3"


#: the write check's multipart uploads, under the run's prefix
WRITE_CHECK = ".s3pput-write-check-"
#: a write check's upload lives for milliseconds: one this old was left by a killed run
STALE_WRITE_CHECK = timedelta(minutes=10)


def check_bucket(options: UploadOptions, transport: Transport | None = None) -> float | None:
    """Fail with one line, before any upload, if the bucket is missing or not usable (see
    ``BucketCheck``); for callers that check before a run, like the Airflow plan task. Returns
    the server's time of HeadBucket's answer (``None`` if it sent no ``Date``)."""
    with contextlib.ExitStack() as opened:
        if transport is None:
            transport = connect(options)
            opened.callback(transport.close)
        check = opened.enter_context(contextlib.closing(BucketCheck(options, transport)))
        server_time = check.wait_head()
        if not options.dry_run:
            check.start_write_check()
            failure = check.write_failure()
            if failure is not None:
                raise failure
        return server_time


class BucketCheck:
    """Whether the bucket can take the run, found with as few round trips as possible.

    Some S3-compatible servers create a bucket on the first PUT (SeaweedFS does so on a
    CreateMultipartUpload too), so a missing bucket is found by HeadBucket rather than by a 404
    from the PUT, and nothing that writes is sent before HeadBucket answered. ``start`` sends
    HeadBucket on a thread of its own, so that the walk and the listing run beside it.
    Writability is checked by starting a multipart upload, which leaves no object behind, beside
    the first PUTs of new keys (``start_write_check``), whose results wait for its verdict
    (``write_failure``): a refusal is one line rather than a failure per file. The aborts follow
    on its thread, through ``transport``'s retries, so that a server that drops out for seconds
    keeps no check upload; ``journal`` holds the upload until then, as the putter's, so that an
    abort the server never took is sent by the next run. ``retry``: how long each check request
    rides out an endpoint that does not answer; a missing bucket or rejected keys fail at once.
    """

    def __init__(
        self,
        options: UploadOptions,
        transport: Transport,
        *,
        retry: RetryPolicy = PATIENCE,
        journal: UploadJournal | None = None,
    ) -> None:
        self.options = options
        self.where = _where(options)
        self.retry = retry
        self.journal = journal
        #: set by ``close``: a check waiting out an outage stops waiting
        self.stopping = threading.Event()
        self.transport = transport
        self.quick: Transport | None = None
        self.background = ThreadPoolExecutor(2, thread_name_prefix="s3pput-check")
        self.head: Future[float | None] | None = None
        #: the write check's upload (its key and id), or why it could not be created
        self.created: Future[tuple[str, str]] | None = None

    def quick_transport(self) -> Transport:
        if self.quick is None:
            try:
                self.quick = self.transport.quick()
            except S3Error as exc:
                raise self.error(exc) from None
        return self.quick

    def patiently(self, call: Callable[[], T]) -> T:
        """``call()`` through an outage of the endpoint, under ``retry``. A failure it does not
        retry is raised; one still met when the budget is spent (or the check closed) is
        ``Unavailable``, saying how long the check asked."""
        tries, start = 0, self.retry.clock()

        def counted() -> T:
            nonlocal tries
            tries += 1
            return call()

        try:
            return self.retry.call(counted, self.stopping)
        except S3Error as exc:
            if not self.retry.retryable(exc):
                raise
            seconds = self.retry.clock() - start
            raise bucket_error(exc, self.options.bucket, self.where, tries=tries, seconds=seconds) from None

    def error(self, exc: S3Error) -> UsageError:
        """The one line for what the check met (see ``bucket_error``). A failed TLS handshake
        (boto3's ``TLS_UNTRUSTED``, the CRT's ``AWS_IO_TLS...``) may be an ``http://`` server."""
        tls_failed = exc.code == S3Error.TLS_UNTRUSTED or exc.code.startswith("AWS_IO_TLS")
        if tls_failed and speaks_plain_http(self.options.connection.endpoint_url or ""):
            return UsageError(
                f"{self.where} does not speak TLS; use http:// in {{setting}}", setting="endpoint_url"
            )
        return bucket_error(exc, self.options.bucket, self.where)

    def start(self) -> Future[float | None]:
        """Send HeadBucket (once); a transport that cannot be opened raises here."""
        if self.head is None:
            self.head = self.background.submit(self.patiently, self.quick_transport().head_bucket)
        return self.head

    def head_passed(self) -> bool:
        """Whether HeadBucket has answered, and well."""
        return self.head is not None and self.head.done() and self.head.exception() is None

    def wait_head(self) -> float | None:
        """Wait for HeadBucket's answer (sent by ``start``): the server's time of it, or its
        failure as one ``UsageError``."""
        try:
            return self.start().result()
        except S3Error as exc:
            raise self.error(exc) from None

    def start_write_check(self) -> None:
        """Before the first PUT of a new key: wait for HeadBucket, then start the write check
        beside the PUTs; ``write_failure`` gives its verdict."""
        self.wait_head()
        if self.created is None:
            quick, probe_prefix = self.quick_transport(), join_key(self.options.prefix, WRITE_CHECK)
            # The killed checks are listed while ours is created: one round trip, not two.
            listed = self.background.submit(quick.open_uploads, probe_prefix)
            self.created = self.background.submit(self._create_probe, quick, probe_prefix)
            self.background.submit(self._clean_up, self.created, listed, probe_prefix)

    def _create_probe(self, quick: Transport, probe_prefix: str) -> tuple[str, str]:
        """Create the write check's upload, written down in the journal: its key and id."""
        probe = probe_prefix + os.urandom(16).hex()  # uuid4's randomness
        intent = self.journal.starting(probe) if self.journal else ""
        try:
            upload_id = self.patiently(lambda: quick.create_multipart(probe, {}))
        except S3Error as exc:
            if _DENIED.matches(exc):
                raise self.write_refused(probe_prefix) from None
            raise self.error(exc) from None
        if self.journal:
            self.journal.started(intent, probe, upload_id)
        return probe, upload_id

    def write_refused(self, probe_prefix: str) -> UsageError:
        """The bucket could be read but not written: say it was the write that was refused."""
        under = probe_prefix.rpartition("/")[0] + "/" if "/" in probe_prefix else "the bucket's root"
        return UsageError(
            f"bucket {self.options.bucket!r} at {self.where} refused a write (a multipart upload under "
            f"{under} was denied): these credentials may read the bucket but not write to it"
        )

    def _clean_up(
        self, created: Future[tuple[str, str]], listed: Future[list[OpenUpload]], probe_prefix: str
    ) -> None:
        """Abort the write check's upload, then the checks that killed runs left."""
        if created.exception() is not None:
            return  # nothing to abort: ``write_failure`` says why
        probe, upload_id = created.result()
        if not _aborted(self.transport, probe, upload_id):
            return  # the journal keeps it: the next run sends its abort
        if self.journal:
            self.journal.finished(upload_id)
        _abort_stale_checks(self.transport, listed, probe_prefix)

    def write_failure(self) -> UsageError | None:
        """The write check's verdict, once it answered: ``None`` if it passed (or never started).
        What is not the bucket's (a journal that cannot be written) is raised."""
        try:
            if self.created is not None:
                self.created.result()
        except UsageError as exc:
            return exc
        return None

    def close(self) -> None:
        self.stopping.set()  # a check still waiting out an outage gives up now
        # The probe uploads are aborted before the run's transport closes. Their abort is best
        # effort once the run has started: an upload it leaves is aborted by a later run.
        self.background.shutdown(wait=True)
        if self.quick is not None and self.quick is not self.transport:
            self.quick.close()


class GateState(enum.Enum):
    HEAD_PENDING = "HeadBucket not answered yet"
    HEAD_PASSED = "HeadBucket passed; no PUT of a new key yet"
    WRITE_CHECK_SENT = "the write check went out beside the first PUTs"
    CONFIRMED = "the write check's verdict was taken (or none is needed)"


class Gate:
    """What a run waits for from its ``BucketCheck``, one step after the other.

    ================  ==============================================  =======================
    state             the run's call                                  next state
    ================  ==============================================  =======================
    HEAD_PENDING      ``wait_head()`` before the first result         HEAD_PASSED
    HEAD_PASSED       ``before_new_keys()`` before the first PUTs     WRITE_CHECK_SENT
                      of new keys: the write check goes out           (dry run: CONFIRMED)
    WRITE_CHECK_SENT  ``confirm(results)`` of the first PUTs          CONFIRMED
    ================  ==============================================  =======================

    The first results wait for the check's verdict: a refused check ends the run in one line,
    unless a PUT landed. Each call is cheap once its step is past. An unchanged re-run puts no
    new key and sends no write check: a changed file under an existing key is put without it
    (a refusal is then that file's failure).
    """

    def __init__(self, check: BucketCheck, *, dry_run: bool) -> None:
        self.check = check
        self.dry_run = dry_run
        self.state = GateState.HEAD_PENDING

    def wait_head(self) -> None:
        if self.state is GateState.HEAD_PENDING:
            self.check.wait_head()
            self.state = GateState.HEAD_PASSED

    @property
    def wants_new_keys(self) -> bool:
        """Whether the next PUT of a new key should call ``before_new_keys`` first."""
        return self.state in (GateState.HEAD_PENDING, GateState.HEAD_PASSED)

    def before_new_keys(self) -> None:
        self.wait_head()
        if self.state is GateState.HEAD_PASSED:
            if self.dry_run:
                self.state = GateState.CONFIRMED
            else:
                self.check.start_write_check()
                self.state = GateState.WRITE_CHECK_SENT

    def confirm(self, results: Sequence[PutResult]) -> None:
        if self.state is not GateState.WRITE_CHECK_SENT or not results:
            return
        failure = self.check.write_failure()
        self.state = GateState.CONFIRMED
        if failure is not None and not any(r.action == "put" for r in results):
            raise failure


class ListingBesideCheck:
    """The listing's transport while HeadBucket runs beside it.

    Until HeadBucket has passed, a page is asked with the check's few attempts: a wrong endpoint
    or a dead server then ends the run with the check's one line once the check's backoff gives
    up, instead of after the listing's own retries. A page that fails so waits for the check's
    verdict (raising its ``UsageError``) and is asked again as usual.
    """

    def __init__(self, check: BucketCheck, transport: Transport) -> None:
        self.check = check
        self.transport = transport

    def list_page(self, prefix: str, **params: Any) -> ListPage:
        """``Transport.list_page``, whose parameters it passes on."""
        if not self.check.head_passed():
            try:
                return self.check.quick_transport().list_page(prefix, **params)
            except S3Error:
                self.check.wait_head()  # the bucket's failure, if that is what it was
        return self.transport.list_page(prefix, **params)


def _aborted(transport: Transport, key: str, upload_id: str) -> bool:
    """Abort an upload; whether it is gone (another run may have aborted it first)."""
    try:
        transport.abort_multipart(key, upload_id)
    except S3Error as exc:
        return exc.no_such_upload
    return True


def _abort_stale_checks(transport: Transport, listed: Future[list[OpenUpload]], probe_prefix: str) -> None:
    """Abort the write checks under ``probe_prefix`` that are too old to belong to a live run."""
    stale = datetime.now(timezone.utc) - STALE_WRITE_CHECK
    with contextlib.suppress(S3Error):  # a failed listing: the next run's check tries again
        for upload in listed.result():
            # Some servers answer a fixed Initiated (moto: 2010): a concurrent run's check may then
            # look stale and lose its upload here, which its own abort tolerates.
            if upload.key.startswith(probe_prefix) and _initiated(upload.initiated) < stale:
                _aborted(transport, upload.key, upload.upload_id)


def _initiated(text: str) -> datetime:
    seconds = iso_seconds(text)
    if seconds is None:
        return datetime.now(timezone.utc)  # unreadable: never old enough to abort
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def speaks_plain_http(endpoint_url: str) -> bool:
    """Whether an ``https://`` endpoint answers plain HTTP (so no TLS handshake can succeed).

    Asked only after a handshake failed: one HEAD request in clear text, nothing secret in it.
    """
    parts = urlsplit(endpoint_url)
    if parts.scheme != "https" or not parts.hostname:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), timeout=3.0) as sock:
            sock.sendall(f"HEAD / HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
            return sock.recv(5) == b"HTTP/"
    except (OSError, ValueError):
        return False


class _Refusal(NamedTuple):
    """The S3 error codes and HTTP statuses (as text) that say the bucket cannot be used, and
    the line that says so, filled in with ``bucket``, ``where``, ``code``, ``message`` and
    ``in_region``; ``{{setting}}`` is left for each front end to spell (``--region``, ``region``)."""

    answers: tuple[str, ...]
    line: str
    setting: str | None = None
    also: tuple[str, ...] = ()

    def matches(self, exc: S3Error) -> bool:
        return exc.code in self.answers or str(exc.status) in self.answers

    def error(self, exc: S3Error, bucket: str, where: str) -> UsageError:
        in_region = f" (it is in {exc.region})" if exc.region else ""
        line = self.line.format(
            bucket=bucket, where=where, code=exc.code, message=exc.message, in_region=in_region
        )
        return UsageError(line, setting=self.setting, also=self.also)


_DENIED = _Refusal(
    ("403", "AccessDenied"),
    "access to bucket {bucket!r} at {where} denied: check the credentials and their permissions",
)
#: the first refusal that matches is the one reported
_REFUSALS = (
    _Refusal(
        (S3Error.PROFILE_NOT_FOUND,),
        "AWS {{setting}} {message} not found in the AWS config files",
        setting="profile",
    ),
    _Refusal(
        (S3Error.NO_CREDENTIALS,),
        "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or a role",
    ),
    _Refusal(
        (S3Error.TLS_UNTRUSTED,),
        # The CLI reads "(use --ca-bundle, or --no-verify-ssl ...)"; Airflow, the setting names.
        "TLS certificate of {where} is not trusted (use {{setting}}, or {{verify_ssl}} at your own risk)",
        setting="ca_bundle",
        also=("verify_ssl",),
    ),
    _Refusal(("404", "NoSuchBucket"), "bucket {bucket!r} does not exist at {where}"),
    _Refusal(
        ("301", "PermanentRedirect", "AuthorizationHeaderMalformed"),
        "bucket {bucket!r} is in another region{in_region}: set {{setting}}",
        setting="region",
    ),
    _Refusal(
        ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"),
        "{where} rejected the credentials ({code})",
    ),
    _DENIED,
)


def bucket_error(
    exc: S3Error, bucket: str, where: str, *, tries: int = 1, seconds: float = 0.0
) -> UsageError:
    """The one line for a bucket that cannot be used, from the transport's ``S3Error`` (see
    ``_REFUSALS``). An error that a later try may not meet (``transient``) is ``Unavailable``,
    saying how long the check asked (``tries`` in ``seconds``)."""
    if transient(exc):
        return _unavailable(exc, bucket, where, tries, seconds)
    for refusal in _REFUSALS:
        if refusal.matches(exc):
            return refusal.error(exc, bucket, where)
    return UsageError(f"bucket {bucket!r} at {where} is not usable: {describe_error(exc)}")


def _unavailable(exc: S3Error, bucket: str, where: str, tries: int, seconds: float) -> Unavailable:
    asked = f" (asked {tries} times in {seconds:.0f} s)" if tries > 1 else ""
    if exc.code == S3Error.UNREACHABLE:
        return Unavailable(f"cannot reach {where}: {exc.message or exc.code}{asked}")
    return Unavailable(f"bucket {bucket!r} at {where} is not available: {describe_error(exc)}{asked}")
