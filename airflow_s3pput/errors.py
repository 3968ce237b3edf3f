"""Every exception the engine raises on purpose, in one place.

``UsageError`` stops a run before anything is uploaded; the others fail one file, which the
putter turns into a ``PutResult`` so that the run goes on and counts it.
"""


class UsageError(Exception):
    """Bad input or an unusable target, found before anything is uploaded.

    The message is one line meant for the user; the CLI prints it as ``s3pput: error: MESSAGE``
    and exits 2, an Airflow task fails with it. Never put a secret in it.
    """


class FileChanged(Exception):
    """The file is not the one the walk saw, or it changed while we read it."""


class IntegrityError(Exception):
    """The server stored bytes other than the ones we sent (its ETag says so)."""


class S3Error(Exception):
    """A request that S3 refused, or that could not reach it, once the transport's own retries
    are spent. Each transport adapter raises only this, translated once where it meets its
    library (botocore or the CRT), so the engine reads one shape whichever carried the request.

    ``code`` is S3's error code (``NoSuchBucket``, ``SlowDown``, ``BadDigest``, ...) or one of
    the codes below for what never got an answer; ``status`` the HTTP status when there was
    one; ``region`` the bucket's region when the server named it (a 301); ``message`` never
    holds a secret.
    """

    #: the endpoint could not be reached (DNS, refused, reset before an answer)
    UNREACHABLE = "Unreachable"
    #: the server's TLS certificate is not trusted
    TLS_UNTRUSTED = "TlsUntrusted"
    #: no credentials anywhere in the chain
    NO_CREDENTIALS = "NoCredentials"
    #: the named AWS profile is not in the config files
    PROFILE_NOT_FOUND = "ProfileNotFound"
    #: no answer within the request's time allowance
    TIMEOUT = "RequestTimeout"

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        status: int | None = None,
        region: str | None = None,
        operation: str = "",
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status
        self.region = region
        self.operation = operation

    @property
    def damaged_in_transit(self) -> bool:
        """The server saw other bytes than we sent (its digest check failed): sending the same
        bytes again is the cure, as for any transient fault."""
        return self.code in ("BadDigest", "InvalidDigest", "IncompleteBody", "XAmzContentSHA256Mismatch")


def describe_error(exc: BaseException) -> str:
    """One line for a failed step, without request details that could carry secrets."""
    if isinstance(exc, S3Error):
        return str(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Interrupted(Exception):
    """Ctrl-C stopped the run: what landed until then is in ``stats`` (a ``Stats``); uploads in
    flight were aborted, none was left half-written."""

    def __init__(self, stats: object) -> None:
        super().__init__("interrupted")
        self.stats = stats
