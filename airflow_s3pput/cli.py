"""``s3pput``: upload files to S3 in parallel, option-compatible with s3-parallel-put.

``main(argv) -> int`` is the whole command (tests call it); exit codes: 0 every file landed or
was skipped, 1 some files failed, 2 bad input or an unusable bucket, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from airflow_s3pput import __version__
from airflow_s3pput.content import DEFAULT_GZIP_TYPES
from airflow_s3pput.engine import upload
from airflow_s3pput.errors import UsageError
from airflow_s3pput.etag import MIB
from airflow_s3pput.modes import MODES
from airflow_s3pput.options import TRANSPORTS, ConnectionSettings, UploadOptions, default_concurrency
from airflow_s3pput.progress import Progress
from airflow_s3pput.stats import PutResult, one_line

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_SIZE = re.compile(r"^(\d+)\s*([kmgt]i?b?|b)?$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``8MiB``, ``16M``, ``1g`` or plain bytes."""
    match = _SIZE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (e.g. 16MiB)")
    number, unit = int(match.group(1)), (match.group(2) or "b").lower()[:1]
    return number * {"b": 1, "k": 1024, "m": MIB, "g": 1024 * MIB, "t": 1024 * 1024 * MIB}[unit]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="s3pput",
        description="Upload files to S3 in parallel (s3-parallel-put, rebuilt).",
        epilog="Credentials come from the standard AWS chain: environment, profile or role.",
    )
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="files or directories to upload")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    target = p.add_argument_group("target")
    target.add_argument("--bucket", help="destination bucket (required)")
    target.add_argument("--prefix", default="", help="key prefix: keys are PREFIX/relative/path")
    target.add_argument(
        "--endpoint-url", default=None, help="S3-compatible endpoint, e.g. http://127.0.0.1:8333"
    )
    target.add_argument("--region", default=None, help="AWS region of the bucket")
    target.add_argument("--profile", default=None, help="AWS profile name")
    target.add_argument(
        "--secure", dest="secure", action="store_true", default=True, help="use https (default)"
    )
    target.add_argument("--insecure", dest="secure", action="store_false", help="use plain http")
    target.add_argument("--ca-bundle", default=None, help="CA bundle to verify TLS certificates with")
    target.add_argument(
        "--no-verify-ssl", action="store_true", help="do not verify TLS certificates (unsafe: opt-in only)"
    )
    what = p.add_argument_group("what to put")
    what.add_argument(
        "--put", default="update", metavar="MODE", help=f"put mode: {', '.join(MODES)} (default update)"
    )
    what.add_argument("--dry-run", action="store_true", help="send no writes; print what would be done")
    what.add_argument("--limit", type=int, default=None, help="put at most N files")
    what.add_argument(
        "--include", action="append", default=[], metavar="GLOB", help="only files matching GLOB"
    )
    what.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="skip files matching GLOB"
    )
    what.add_argument(
        "--follow-symlinks", action="store_true", help="walk into directory symlinks (loops are detected)"
    )
    how = p.add_argument_group("how to store")
    how.add_argument("--content-type", default=None, help="Content-Type for every file (default: guessed)")
    how.add_argument("--gzip", action="store_true", help="gzip text-like files, set Content-Encoding: gzip")
    how.add_argument(
        "--gzip-type",
        action="append",
        default=None,
        metavar="TYPE",
        help="MIME type to gzip (repeatable; 'all' for every file)",
    )
    how.add_argument("--gzip-level", type=int, default=9, help="gzip level 1-9 (default 9)")
    how.add_argument("--grant", default=None, help="canned ACL, e.g. public-read")
    how.add_argument(
        "--header", action="append", default=[], metavar="NAME:VALUE", help="extra header (repeatable)"
    )
    speed = p.add_argument_group("concurrency")
    speed.add_argument(
        "--transport",
        default="auto",
        choices=TRANSPORTS,
        help="data plane for single PUTs: crt (AWS C runtime, fastest), boto3, or auto (crt if installed)",
    )
    speed.add_argument(
        "--processes", type=int, default=None, help="worker processes (default: 1 with crt, CPUs with boto3)"
    )
    speed.add_argument(
        "--threads", type=int, default=None, help="requests in flight per process (default: 64 crt, 16 boto3)"
    )
    speed.add_argument(
        "--multipart-threshold",
        type=parse_size,
        default=16 * MIB,
        help="multipart from this size (default 16MiB)",
    )
    speed.add_argument(
        "--part-size", type=parse_size, default=16 * MIB, help="multipart part size (default 16MiB)"
    )
    speed.add_argument("--retries", type=int, default=4, help="retries of a failed request (default 4)")
    speed.add_argument(
        "--connect-timeout", type=float, default=10.0, metavar="SECONDS", help="connect timeout (default 10)"
    )
    speed.add_argument(
        "--read-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for a server's answer (default 60)",
    )
    record = p.add_argument_group(
        "digest record",
        "update remembers the digests of the files it read, with their stat, and skips an unchanged "
        "file without reading it again",
    )
    record.add_argument(
        "--rehash",
        action="store_true",
        help="read and hash every file, ignoring remembered digests (and remember the new ones)",
    )
    record.add_argument(
        "--no-digest-cache",
        action="store_true",
        help="neither use nor update the digest record: every file is read",
    )
    record.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="where the digest record lives (default $S3PPUT_CACHE_DIR, else ~/.cache/s3pput)",
    )
    out = p.add_argument_group("output")
    out.add_argument("--verbose", "-v", action="store_true", help="print every file")
    out.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    out.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    out.add_argument("--no-progress", action="store_true", help="no live progress line on a terminal")
    return p


def options_from_args(args: argparse.Namespace) -> UploadOptions:
    endpoint = (
        args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    if endpoint and "://" not in endpoint:
        endpoint = ("https://" if args.secure else "http://") + endpoint
    verify: bool | str = args.ca_bundle or True
    if args.no_verify_ssl:
        verify = False
    if args.retries < 0:
        raise UsageError(f"--retries must be 0 or more, not {args.retries}")
    connection = ConnectionSettings(
        endpoint_url=endpoint,
        region=args.region,
        secure=args.secure,
        verify=verify,
        profile=args.profile,
        max_attempts=args.retries + 1,
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
    )
    processes, threads = default_concurrency(args.transport)
    return UploadOptions(
        bucket=args.bucket or "",
        sources=tuple(args.sources),
        prefix=args.prefix,
        mode=args.put,
        dry_run=args.dry_run,
        limit=args.limit,
        content_type=args.content_type,
        gzip=args.gzip,
        gzip_types=tuple(args.gzip_type) if args.gzip_type else DEFAULT_GZIP_TYPES,
        gzip_level=args.gzip_level,
        headers=tuple(args.header),
        grant=args.grant,
        include=tuple(args.include),
        exclude=tuple(args.exclude),
        follow_symlinks=args.follow_symlinks,
        processes=processes if args.processes is None else args.processes,
        threads=threads if args.threads is None else args.threads,
        transport=args.transport,
        multipart_threshold=args.multipart_threshold,
        part_size=args.part_size,
        connection=connection,
        digest_cache=not args.no_digest_cache,
        rehash=args.rehash,
        cache_dir=args.cache_dir,
    )


class Reporter:
    """Prints per-file lines and the progress line as results arrive."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.verbose = args.verbose and not args.quiet
        self.dry_run = args.dry_run
        self.quiet = args.quiet
        self.files_out = err if args.json else out
        self.err = err
        self.progress = Progress()
        self.live = not (args.quiet or args.no_progress or args.verbose) and err.isatty()
        self._drawn = False

    def __call__(self, result: PutResult) -> None:
        self.progress.add(result)
        if result.action == "fail":
            self._clear()
            print(f"s3pput: failed {_where(result)}: {result.error}", file=self.err)
        elif self.dry_run and not self.quiet:
            self._clear()
            if result.action == "put":
                print(f"would put {_where(result)}", file=self.files_out)
            else:
                print(f"would skip {_where(result)} ({result.reason})", file=self.files_out)
        elif self.verbose:
            verb = "put" if result.action == "put" else f"skip ({result.reason})"
            print(f"{verb} {_where(result)}", file=self.files_out)
        if self.live and self.progress.due():
            self.err.write("\r\033[K" + self.progress.line())
            self.err.flush()
            self._drawn = True

    def _clear(self) -> None:
        if self._drawn:
            self.err.write("\r\033[K")
            self._drawn = False

    def finish(self) -> None:
        self._clear()


def _where(result: PutResult) -> str:
    """``PATH -> KEY`` on one line: a newline or other control character in a name is escaped."""
    return f"{one_line(result.path)} -> {one_line(result.key)}"


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
        options = options_from_args(args)
        if args.no_verify_ssl:
            # One line for the user's explicit choice, instead of urllib3's warning per connection.
            warnings.filterwarnings("ignore", message="Unverified HTTPS request")
            print("s3pput: warning: TLS certificates are not verified (--no-verify-ssl)", file=err)
        reporter = Reporter(args, out, err)
        try:
            stats = upload(options, on_result=reporter)
        finally:
            reporter.finish()
    except UsageError as exc:
        print(f"s3pput: error: {exc}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("s3pput: interrupted", file=err)
        return EXIT_INTERRUPTED
    if args.json:
        print(json.dumps(stats.to_dict()), file=out)
    elif not args.quiet:
        print(stats.table(), file=out)
    return EXIT_OK if stats.ok else EXIT_FAILED


def entrypoint() -> None:
    sys.exit(main())
