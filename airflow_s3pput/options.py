"""One validated options object for a run, built once at the edge (CLI or operator).

Like s3transfer's ``TransferConfig``, bad values are rejected when the object is built, with a
one-line ``UsageError`` naming the setting (by its canonical name, which the CLI renders as its
flag), so nothing is uploaded on bad input. Every field is plain data: the object pickles into
worker processes and its ``repr`` holds no secret. Each default lives here, once; the builder
from raw settings (``option_builder.build_options``) leaves a setting that was not given to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from airflow_s3pput.errors import UsageError
from airflow_s3pput.etag import MIB, S3PPUT_PART_SIZE
from airflow_s3pput.headers import has_control_chars, header_params
from airflow_s3pput.modes import MODES
from airflow_s3pput.upload_body import ALL_TYPES, DEFAULT_GZIP_TYPES
from airflow_s3pput.walker import FILTER_KINDS, Selection

MIN_PART_SIZE = 5 * MIB
#: aws cli's and boto3's default too
DEFAULT_PART_SIZE = S3PPUT_PART_SIZE
DEFAULT_MULTIPART_THRESHOLD = 16 * MIB
#: attempts of a request that failed transiently: s5cmd retries 10 times; at 40% SlowDown
#: 5 attempts lose ~1% of files (0.4**5), 10 lose ~0.01%
DEFAULT_ATTEMPTS = 10
MAX_ATTEMPTS = 20
MAX_PART_SIZE = 5 * 1024 * MIB
MAX_PARTS = 10_000
MAX_PROCESSES = 64
MAX_THREADS = 256
MAX_TIMEOUT = 3600.0

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$")


TRANSPORTS = ("auto", "crt", "boto3")
ADDRESSING_STYLES = ("auto", "path", "virtual")


def _check_choice(setting: str, value: str, choices: Iterable[str]) -> None:
    if value not in choices:
        raise UsageError(
            f"invalid {{setting}} {value!r}: expected one of {', '.join(choices)}", setting=setting
        )


def _check_endpoint(url: str) -> None:
    """An endpoint is ``http(s)://host[:port][/path]``: the path (a gateway serving S3 under
    ``/s3-gw/``) prefixes every request path, as botocore does. The error shows the URL without
    the credentials it may carry, so a password is never repeated."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket
        parts = urlsplit("")
    reason = _endpoint_problem(url, parts)
    if reason:
        shown = url.replace(parts.netloc, parts.netloc.rpartition("@")[2])
        raise UsageError(f"invalid {{setting}} {shown!r}: {reason}", setting="endpoint_url")


def _endpoint_problem(url: str, parts: SplitResult) -> str | None:
    if parts.scheme not in ("http", "https") or not parts.netloc or re.search(r"\s", url):
        return "expected http(s)://host[:port][/path]"
    if "@" in parts.netloc:
        return "credentials in the URL are not used: give them as AWS credentials"
    if "?" in url or "#" in url:  # an empty query or fragment too
        return "an endpoint has no query or fragment"
    if "//" in parts.path or any(segment in (".", "..") for segment in parts.path.split("/")):
        return "its path must be plain segments, as in https://host/s3-gw/"
    return None


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
    max_attempts: int = DEFAULT_ATTEMPTS
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    #: ``path`` (``ENDPOINT/BUCKET/KEY``), ``virtual`` (``BUCKET.HOST/KEY``) or ``auto`` (path on a
    #: custom endpoint; on AWS: boto3's choice, path on the CRT)
    addressing_style: str = "auto"
    #: the other botocore ``Config`` options of an Airflow connection's ``config_kwargs``
    #: (proxies, ...), as ``(name, value)`` pairs: see ``transport.client_config`` for which
    #: transport honours which. Out of ``repr``: a proxy URL may carry a password.
    client_options: tuple[tuple[str, Any], ...] = field(default=(), repr=False)
    #: builds a boto3 session whose credentials refresh themselves (an assumed role, web
    #: identity, an instance role: an Airflow connection's): requests are signed with what it
    #: holds at the time, not with keys frozen when the run started. Picklable (a module-level
    #: function, or a ``functools.partial`` of one) for worker processes.
    session_factory: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.endpoint_url).scheme == "https" if self.endpoint_url else self.secure

    @property
    def endpoint_path(self) -> str:
        """The path the endpoint serves S3 under (``/s3-gw`` of ``https://host/s3-gw/``), or ""."""
        return urlsplit(self.endpoint_url).path.rstrip("/") if self.endpoint_url else ""

    def __post_init__(self) -> None:
        if self.endpoint_url is not None:
            _check_endpoint(self.endpoint_url)
        _check_choice("addressing_style", self.addressing_style, ADDRESSING_STYLES)
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise UsageError(f"{{setting}} must be between 0 and {MAX_ATTEMPTS - 1}", setting="retries")
        # Written so that NaN fails too.
        if not (0 < self.connect_timeout <= MAX_TIMEOUT and 0 < self.read_timeout <= MAX_TIMEOUT):
            raise UsageError(
                f"timeouts ({{setting}}, {{read_timeout}}) must be in (0, {MAX_TIMEOUT:g}] seconds",
                setting="connect_timeout",
                also=("read_timeout",),
            )


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
    #: ``(kind, glob)`` filters in the order given (``--exclude``/``--include``, aws cli's
    #: rule: the last match wins); they apply after ``include`` and ``exclude`` (see ``Selection``)
    filters: tuple[tuple[str, str], ...] = ()
    follow_symlinks: bool = False
    processes: int = 1
    threads: int = 64
    transport: str = "auto"
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
    part_size: int = DEFAULT_PART_SIZE
    connection: ConnectionSettings = field(default_factory=ConnectionSettings)
    delete: bool = False
    #: ``update`` remembers the digests it computed (see ``digest_record``) and skips a file whose
    #: stat is unchanged without reading it; False: neither use nor write the record
    digest_cache: bool = True
    #: read and hash every file, ignoring remembered digests (and record the new ones)
    rehash: bool = False
    #: where the record lives; None: ``$S3PPUT_CACHE_DIR`` or the user's cache directory
    cache_dir: str | None = None
    #: a large file whose multipart upload is open on the server (a killed run's) carries it on,
    #: reusing the parts that are provably its bytes (see ``MultipartUploads.resumable``)
    resume: bool = True

    def __post_init__(self) -> None:
        # One check per concern, each raising the UsageError that names its setting.
        self._check_target()
        self._check_choices()
        self._check_ranges()
        self._check_content()
        self._check_filters()
        self._check_headers()

    def _check_target(self) -> None:
        if not self.bucket:
            raise UsageError("{setting} is required", setting="bucket")
        if not _BUCKET.match(self.bucket) or ".." in self.bucket:
            raise UsageError(
                f"invalid {{setting}} {self.bucket!r}: not a valid bucket name", setting="bucket"
            )
        if ".." in self.prefix.split("/"):
            # Such keys escape their folder when someone syncs the bucket back to a disk.
            raise UsageError(
                f"invalid {{setting}} {self.prefix!r}: '..' is not allowed in keys", setting="prefix"
            )
        if self.cache_dir is not None and (not self.cache_dir.strip() or "\0" in self.cache_dir):
            raise UsageError(f"invalid {{setting}} {self.cache_dir!r}", setting="cache_dir")

    def _check_choices(self) -> None:
        _check_choice("put_mode", self.mode, MODES)
        _check_choice("transport", self.transport, TRANSPORTS)
        if self.delete and self.limit is not None:
            # Files past the limit are not uploaded, and their keys would look extraneous.
            raise UsageError("{setting} cannot be combined with {limit}", setting="delete", also=("limit",))

    def _check_ranges(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise UsageError(f"{{setting}} must be 0 or more, not {self.limit}", setting="limit")
        for setting, most in (("processes", MAX_PROCESSES), ("threads", MAX_THREADS)):
            if not 1 <= getattr(self, setting) <= most:
                raise UsageError(
                    f"{{setting}} must be between 1 and {most}, not {getattr(self, setting)}", setting=setting
                )
        for name in ("part_size", "multipart_threshold"):
            if not MIN_PART_SIZE <= getattr(self, name) <= MAX_PART_SIZE:
                raise UsageError(
                    f"{{setting}} must be between {MIN_PART_SIZE // MIB} MiB and {MAX_PART_SIZE // MIB} MiB, "
                    f"not {getattr(self, name)} bytes",
                    setting=name,
                )
        if not 1 <= self.gzip_level <= 9:
            raise UsageError("{setting} must be between 1 and 9", setting="gzip_level")

    def _check_content(self) -> None:
        content_type = self.content_type
        if content_type is not None and ("/" not in content_type or has_control_chars(content_type)):
            raise UsageError(f"invalid {{setting}} {content_type!r}", setting="content_type")
        for gzip_type in self.gzip_types:
            if gzip_type != ALL_TYPES and "/" not in gzip_type:
                raise UsageError(
                    f"invalid {{setting}} {gzip_type!r}: a MIME type or 'all'", setting="gzip_types"
                )

    def _check_headers(self) -> None:
        params = self.put_params()  # validates the headers and the grant ACL
        if self.gzip and "ContentEncoding" in params:
            raise UsageError(
                "{setting} sets Content-Encoding itself: drop the Content-Encoding header from {headers}",
                setting="gzip",
                also=("headers",),
            )
        if self.content_type and "ContentType" in params:
            raise UsageError(
                "give the content type once: {setting} or a Content-Type header in {headers}",
                setting="content_type",
                also=("headers",),
            )

    def _check_filters(self) -> None:
        for kind, glob in self.filters:
            if kind not in FILTER_KINDS or not isinstance(glob, str) or not glob:
                raise UsageError(f"invalid {{setting}} {kind} {glob!r}", setting="filters")

    def put_params(self) -> dict[str, Any]:
        """The validated extra PutObject arguments from ``headers`` and ``grant``."""
        return header_params(self.headers, self.grant)

    def selection(self) -> Selection:
        """What the walk picks: include/exclude globs and the symlink policy."""
        return Selection(self.include, self.exclude, self.follow_symlinks, self.filters)

    def part_size_for(self, size: int) -> int:
        """The part size for a file: ours, grown when the file would need over 10,000 parts."""
        part = self.part_size
        while -(-size // part) > MAX_PARTS:
            part *= 2
        return part
