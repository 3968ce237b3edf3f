"""Every exception the engine raises on purpose, in one place.

``UsageError`` stops a run before anything is uploaded; the others fail one file, which the
putter turns into a ``PutResult`` so that the run goes on and counts it. ``Unavailable`` is the
one ``UsageError`` that a later try may not meet: an endpoint that stayed out of reach.

A ``UsageError`` names the settings it is about by their canonical names (``put_mode``,
``dry_run``, ``part_size``: the names in ``UploadOptions``, the builder and the Airflow
operators), as ``{setting}`` placeholders in its message. Each front end renders them in its
own spelling: the CLI as its flags (``--put``), the Airflow provider as they are
(``put_mode``). So one validation serves both, and neither shows the other's words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class UsageError(Exception):
    """Bad input or an unusable target, found before anything is uploaded.

    ``message`` is one line meant for the user. ``{setting}`` in it stands for ``setting``;
    ``{name}`` for each name in ``also`` (a message about two settings)::

        UsageError("invalid {setting} 'sync': expected one of add, stupid, update", setting="put_mode")
        UsageError("{setting} and {headers} x-amz-acl disagree", setting="grant", also=("headers",))

    ``str()`` renders the canonical names; ``render(spelling)`` a front end's. The CLI prints
    ``s3pput: error: MESSAGE`` and exits 2, an Airflow task fails with it. Never put a secret in it.
    """

    def __init__(self, message: str, *, setting: str | None = None, also: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.template = message
        self.setting = setting
        self.also = tuple(also)

    @property
    def settings(self) -> tuple[str, ...]:
        """The canonical names of the settings the message is about, the main one first."""
        return ((self.setting,) if self.setting else ()) + self.also

    def render(self, spelling: Mapping[str, str] | None = None) -> str:
        """The message with each setting spelled as ``spelling`` says (default: canonical)."""
        spelling = spelling or {}
        text = self.template
        if self.setting:
            text = text.replace("{setting}", spelling.get(self.setting, self.setting))
        for name in self.also:
            text = text.replace("{" + name + "}", spelling.get(name, name))
        return text

    def __str__(self) -> str:
        return self.render()


class Unavailable(UsageError):
    """The endpoint could not be reached, or answered only "later" (5xx, no answer in time),
    for as long as the bucket check waits: unlike every other ``UsageError`` it may pass.

    The CLI reports it as any ``UsageError`` (one line, exit 2); the Airflow operators raise it
    as an ordinary exception, so that the task's ``retries`` apply.
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
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status
        self.region = region

    @property
    def no_such_upload(self) -> bool:
        """Aborting found no such multipart upload: it completed, or someone aborted it first."""
        return self.code == "NoSuchUpload" or self.status == 404

    @property
    def refuses_header(self) -> bool:
        """The server does not take a header of the request, as older S3-compatible stores
        answer S3's newer checksum headers (400 or 501, a generic code)."""
        return self.status in (400, 501) and self.code in (
            "InvalidArgument", "InvalidRequest", "NotImplemented", "BadRequest", "400", "501",
        )  # fmt: skip

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
