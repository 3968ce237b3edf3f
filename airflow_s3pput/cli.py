"""``s3pput``: upload files to S3 in parallel, option-compatible with s3-parallel-put.

``main(argv) -> int`` is the whole command (tests call it); exit codes: 0 every file landed or
was skipped, 1 some files failed, 2 bad input or an unusable bucket, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any, TextIO

from airflow_s3pput import __version__
from airflow_s3pput.engine import upload
from airflow_s3pput.errors import Interrupted, UsageError
from airflow_s3pput.etag import MIB
from airflow_s3pput.modes import MODES
from airflow_s3pput.options import (
    DEFAULT_MULTIPART_THRESHOLD,
    DEFAULT_PART_SIZE,
    TRANSPORTS,
    ConnectionSettings,
    UploadOptions,
)
from airflow_s3pput.progress import Progress
from airflow_s3pput.settings import (
    CONNECTION_SETTINGS,
    UPLOAD_SETTINGS,
    as_size,
    build_connection,
    build_options,
)
from airflow_s3pput.stats import PutResult, where

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: the default of --retries: the attempts after the first
DEFAULT_RETRIES = ConnectionSettings.max_attempts - 1


def parse_size(text: str) -> int:
    """``8MiB``, ``16M``, ``1g`` or plain bytes."""
    try:
        return as_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (e.g. 16MiB)") from None


def _mib(size: int) -> str:
    return f"{size // MIB}MiB"


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, told the terminal's width: left to find it, argparse imports shutil
    (and with it bz2 and lzma), ~3.5 ms of every start, help or not."""

    def __init__(self, prog: str) -> None:
        try:
            columns = int(os.environ.get("COLUMNS", "0"))
            stdout = sys.__stdout__
            if not columns and stdout is not None:
                columns = os.get_terminal_size(stdout.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 0
        super().__init__(prog, width=max((columns or 80) - 2, 10))  # 80: shutil's fallback


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command line. Each option's ``dest`` is the canonical name of its setting (see
    ``settings``); defaults are left to the builder, so each lives once."""
    p = _Parser(
        prog="s3pput",
        formatter_class=_Formatter,
        description="Upload files to S3 in parallel (s3-parallel-put, rebuilt).",
        epilog="Credentials come from the standard AWS chain: environment, profile or role.",
    )
    p.add_argument("source", nargs="*", metavar="SOURCE", help="files or directories to upload")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    target = p.add_argument_group("target")
    target.add_argument("--bucket", help="destination bucket (required)")
    target.add_argument("--prefix", help="key prefix: keys are PREFIX/relative/path")
    target.add_argument("--endpoint-url", help="S3-compatible endpoint, e.g. http://127.0.0.1:8333")
    target.add_argument("--region", help="AWS region of the bucket")
    target.add_argument("--profile", help="AWS profile name")
    target.add_argument(
        "--secure", dest="secure", action="store_true", default=None, help="use https (default)"
    )
    target.add_argument("--insecure", dest="secure", action="store_false", help="use plain http")
    target.add_argument("--ca-bundle", help="CA bundle to verify TLS certificates with")
    target.add_argument(
        "--no-verify-ssl",
        dest="verify_ssl",
        action="store_false",
        default=None,
        help="do not verify TLS certificates (unsafe: opt-in only)",
    )
    what = p.add_argument_group("what to put")
    what.add_argument(
        "--put", dest="put_mode", metavar="MODE", help=f"put mode: {', '.join(MODES)} (default update)"
    )
    what.add_argument(
        "--dry-run", action="store_true", default=None, help="send no writes; print what would be done"
    )
    what.add_argument("--limit", type=int, help="put at most N files")
    what.add_argument(
        "--delete",
        action="store_true",
        help="after the upload, delete keys under PREFIX that no local file maps to (kept: keys that "
        "--include/--exclude leave out); nothing is deleted when a file failed",
    )
    what.add_argument("--include", action="append", metavar="GLOB", help="only files matching GLOB")
    what.add_argument("--exclude", action="append", metavar="GLOB", help="skip files matching GLOB")
    what.add_argument(
        "--follow-symlinks",
        action="store_true",
        default=None,
        help="walk into directory symlinks (loops are detected)",
    )
    how = p.add_argument_group("how to store")
    how.add_argument("--content-type", help="Content-Type for every file (default: guessed)")
    how.add_argument(
        "--gzip", action="store_true", default=None, help="gzip text-like files, set Content-Encoding: gzip"
    )
    how.add_argument(
        "--gzip-type",
        dest="gzip_types",
        action="append",
        metavar="TYPE",
        help="MIME type to gzip (repeatable; 'all' for every file)",
    )
    how.add_argument("--gzip-level", type=int, help=f"gzip level 1-9 (default {UploadOptions.gzip_level})")
    how.add_argument("--grant", help="canned ACL, e.g. public-read")
    how.add_argument(
        "--header", dest="headers", action="append", metavar="NAME:VALUE", help="extra header (repeatable)"
    )
    speed = p.add_argument_group("concurrency")
    speed.add_argument(
        "--transport",
        choices=TRANSPORTS,
        help="data plane for single PUTs: crt (AWS C runtime, fastest), boto3, or auto (crt if installed)",
    )
    speed.add_argument(
        "--processes", type=int, help="worker processes (default: 1 with crt, CPUs with boto3)"
    )
    speed.add_argument(
        "--threads", type=int, help="requests in flight per process (default: 64 crt, 16 boto3)"
    )
    speed.add_argument(
        "--multipart-threshold",
        type=parse_size,
        help=f"multipart from this size (default {_mib(DEFAULT_MULTIPART_THRESHOLD)})",
    )
    speed.add_argument(
        "--part-size", type=parse_size, help=f"multipart part size (default {_mib(DEFAULT_PART_SIZE)})"
    )
    speed.add_argument("--retries", type=int, help=f"retries of a failed request (default {DEFAULT_RETRIES})")
    speed.add_argument(
        "--connect-timeout",
        type=float,
        metavar="SECONDS",
        help=f"connect timeout (default {ConnectionSettings.connect_timeout:g})",
    )
    speed.add_argument(
        "--read-timeout",
        type=float,
        metavar="SECONDS",
        help=f"how long to wait for a server's answer (default {ConnectionSettings.read_timeout:g})",
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
        dest="digest_cache",
        action="store_false",
        default=None,
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


def flag_spelling(parser: argparse.ArgumentParser) -> dict[str, str]:
    """How the shell spells each setting: its option (``put_mode`` -> ``--put``), or ``SOURCE``."""
    spelling: dict[str, str] = {}
    for action in parser._actions:
        if action.option_strings:
            long = [s for s in action.option_strings if s.startswith("--")]
            spelling.setdefault(action.dest, long[0] if long else action.option_strings[0])
        elif isinstance(action.metavar, str):
            spelling[action.dest] = action.metavar
    spelling["secure"] = "--secure/--insecure"
    return spelling


FLAGS = flag_spelling(build_parser())


def render(error: UsageError) -> str:
    """A usage error as the shell reads it: settings spelled as flags."""
    return error.render(FLAGS)


def raw_settings(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The upload and the connection settings that the command line gave (with the environment's
    endpoint, as the AWS CLI reads it)."""
    given = vars(args)
    upload_raw = {name: given[name] for name in UPLOAD_SETTINGS if name in given}
    connection_raw = {name: given[name] for name in CONNECTION_SETTINGS if name in given}
    if not connection_raw.get("endpoint_url"):
        connection_raw["endpoint_url"] = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
            "AWS_ENDPOINT_URL"
        )
    return upload_raw, connection_raw


def options_from_args(args: argparse.Namespace) -> UploadOptions:
    upload_raw, connection_raw = raw_settings(args)
    return build_options(upload_raw, connection=build_connection(connection_raw))


def _no_verify(args: argparse.Namespace) -> bool:
    return args.verify_ssl is False


class Reporter:
    """Prints per-file lines and the progress line as results arrive."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.verbose = args.verbose and not args.quiet
        self.dry_run = bool(args.dry_run)
        self.quiet = args.quiet
        self.files_out = err if args.json else out
        self.err = err
        self.progress = Progress(dry_run=self.dry_run)
        self.live = not (args.quiet or args.no_progress or args.verbose) and err.isatty()
        self._drawn = False

    def __call__(self, result: PutResult) -> None:
        if self.live:
            self.progress.add(result)  # counted only for the live line
        elif result.action == "skip" and not (self.dry_run or self.verbose):
            return  # the common case of a re-run: nothing to print, once per file
        if result.action == "fail":
            self._clear()
            print(f"s3pput: failed {where(result)}: {result.error}", file=self.err)
        elif result.action == "delete":
            if (self.dry_run or self.verbose) and not self.quiet:
                self._clear()
                print(f"{'would delete' if self.dry_run else 'delete'} {where(result)}", file=self.files_out)
        elif self.dry_run and not self.quiet:
            self._clear()
            if result.action == "put":
                print(f"would put {where(result)}", file=self.files_out)
            else:
                print(f"would skip {where(result)} ({result.reason})", file=self.files_out)
        elif self.verbose:
            verb = "put" if result.action == "put" else f"skip ({result.reason})"
            print(f"{verb} {where(result)}", file=self.files_out)
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


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
        options = options_from_args(args)
        if _no_verify(args):
            # One line for the user's explicit choice, instead of urllib3's warning per connection.
            warnings.filterwarnings("ignore", message="Unverified HTTPS request")
            print("s3pput: warning: TLS certificates are not verified (--no-verify-ssl)", file=err)
        reporter = Reporter(args, out, err)
        interrupted = False
        try:
            stats = upload(options, on_result=reporter)
        except Interrupted as stopped:
            stats, interrupted = stopped.stats, True  # type: ignore[assignment]
        finally:
            reporter.finish()
    except UsageError as exc:
        print(f"s3pput: error: {render(exc)}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # The second Ctrl-C: the user does not want to wait for the uploads in flight.
        print("s3pput: interrupted again: not waiting for the uploads in flight", file=err)
        _abandoned.set()
        return EXIT_INTERRUPTED
    if args.json:
        print(json.dumps(stats.to_dict()), file=out)
    elif not args.quiet:
        print(stats.table(), file=out)
    if interrupted:
        print("s3pput: interrupted: uploads in flight were aborted; the summary shows what landed", file=err)
        return EXIT_INTERRUPTED
    return EXIT_OK if stats.ok else EXIT_FAILED


#: set when a second Ctrl-C asked not to wait: the process then exits without joining threads
_abandoned = threading.Event()


def entrypoint() -> None:
    code = main()
    if _abandoned.is_set():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # worker threads still hold requests: leave them (the journal has them)
    sys.exit(code)
