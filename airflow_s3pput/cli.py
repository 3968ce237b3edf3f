"""``s3pput``: upload files to S3 in parallel, option-compatible with s3-parallel-put.

``main(argv) -> int`` is the whole command (tests call it); exit codes: 0 every file landed or
was skipped, 1 some files failed, 2 bad input or an unusable bucket, 130 interrupted (Ctrl-C),
143 terminated (SIGTERM, which stops the run as Ctrl-C does).

A closed stdout or stderr (``s3pput --verbose ... | head``) silences that stream; the upload
goes on to its end and the exit code says how it went.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from airflow_s3pput import __version__
from airflow_s3pput.engine import upload
from airflow_s3pput.errors import Interrupted, UsageError
from airflow_s3pput.etag import MIB
from airflow_s3pput.modes import MODES
from airflow_s3pput.option_builder import as_size, build_connection, build_options
from airflow_s3pput.options import (
    DEFAULT_MULTIPART_THRESHOLD,
    DEFAULT_PART_SIZE,
    TRANSPORTS,
    ConnectionSettings,
    UploadOptions,
)
from airflow_s3pput.progress import Progress
from airflow_s3pput.stats import PutResult, Stats, where
from airflow_s3pput.transport import environment_endpoint
from airflow_s3pput.walker import (
    Selection,
    distinct_sources,
    doubled_slash_warning,
    ineffective_includes,
    walk,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: 128 + SIGTERM, what a shell reports for a process SIGTERM ended
EXIT_TERMINATED = 128 + signal.SIGTERM
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


class _Parser(argparse.ArgumentParser):
    """Raises ``UsageError`` for bad arguments, and keeps every option it declares (``declared``,
    its groups' too): argparse lists them only in a private attribute."""

    def __init__(self, **kwargs: Any) -> None:
        self.declared: list[argparse.Action] = []  # before argparse adds ``--help`` in __init__
        super().__init__(**kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.declared.append(action)
        return action

    def group(self, title: str, description: str | None = None) -> _Group:
        return _Group(self.add_argument_group(title, description), self.declared)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


class _Group:
    """An argument group that adds its options to its parser's ``declared`` list too."""

    def __init__(self, group: Any, declared: list[argparse.Action]) -> None:
        self._group, self._declared = group, declared

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action: argparse.Action = self._group.add_argument(*args, **kwargs)
        self._declared.append(action)
        return action


class _Filter(argparse.Action):
    """``--include`` and ``--exclude`` into one list, in the order given: their order decides."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None
    ) -> None:
        rules = list(getattr(namespace, self.dest, None) or [])
        rules.append((str(option).lstrip("-"), values))
        setattr(namespace, self.dest, rules)


#: a switch for a setting: given or not (None leaves the setting's default)
_ON: dict[str, Any] = {"action": "store_true", "default": None}
#: a ``--no-...`` switch that turns its setting off
_OFF: dict[str, Any] = {"action": "store_false", "default": None}
_FILTER: dict[str, Any] = {"dest": "filters", "action": _Filter, "metavar": "GLOB"}
_SECONDS: dict[str, Any] = {"type": float, "metavar": "SECONDS"}


def build_parser() -> _Parser:
    """The command line. Each option's ``dest`` is the canonical name of its setting (see
    ``option_builder``); defaults are left to the builder, so each lives once."""
    p = _Parser(
        prog="s3pput",
        description="Upload files to S3 in parallel (s3-parallel-put, rebuilt).",
        epilog="Credentials come from the standard AWS chain: environment, profile or role.",
    )
    p.add_argument("source", nargs="*", metavar="SOURCE", help="files or directories to upload")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    target = p.group("target")
    target.add_argument("--bucket", help="destination bucket (required)")
    target.add_argument("--prefix", help="key prefix: keys are PREFIX/relative/path")
    target.add_argument("--endpoint-url", help="S3-compatible endpoint, e.g. http://127.0.0.1:8333")
    target.add_argument("--region", help="AWS region of the bucket")
    target.add_argument("--profile", help="AWS profile name")
    target.add_argument("--secure", **_ON, help="use https (default)")
    target.add_argument("--insecure", dest="secure", action="store_false", help="use plain http")
    target.add_argument("--ca-bundle", help="CA bundle to verify TLS certificates with")
    target.add_argument(
        "--no-verify-ssl",
        dest="verify_ssl",
        **_OFF,
        help="do not verify TLS certificates (unsafe: opt-in only)",
    )
    what = p.group("what to put")
    what.add_argument(
        "--put", dest="put_mode", metavar="MODE", help=f"put mode: {', '.join(MODES)} (default update)"
    )
    what.add_argument("--dry-run", **_ON, help="send no writes; print what would be done")
    what.add_argument("--limit", type=int, help="put at most N files")
    what.add_argument(
        "--delete",
        **_ON,
        help="after the upload, delete keys under PREFIX that no local file maps to (kept: keys that "
        "--include/--exclude leave out); nothing is deleted when a file failed",
    )
    what.add_argument(
        "--exclude",
        **_FILTER,
        help="leave out files whose path relative to SOURCE matches GLOB (repeatable; '*' also matches "
        "'/': '*.log' is any .log, 'k.txt' only the one at the top, '*/k.txt' those below it)",
    )
    what.add_argument(
        "--include",
        **_FILTER,
        help="take back files matching GLOB that an earlier --exclude left out. As in aws cli, every "
        "file is included unless excluded, and the filters apply in the order given, the last match "
        "winning: --exclude '*' --include '*.txt' uploads the .txt files only",
    )
    what.add_argument("--follow-symlinks", **_ON, help="walk into directory symlinks (loops are detected)")
    how = p.group("how to store")
    how.add_argument("--content-type", help="Content-Type for every file (default: guessed)")
    how.add_argument("--gzip", **_ON, help="gzip text-like files, set Content-Encoding: gzip")
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
    speed = p.group("concurrency")
    speed.add_argument(
        "--transport",
        choices=TRANSPORTS,
        help="data plane for single PUTs: crt (AWS C runtime, fastest), boto3, or auto (crt if installed)",
    )
    speed.add_argument(
        "--processes", type=int, help="worker processes (default: 1 with crt, CPUs up to 8 with boto3)"
    )
    speed.add_argument("--threads", type=int, help="requests in flight per process (default 64)")
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
        **_SECONDS,
        help=f"connect timeout (default {ConnectionSettings.connect_timeout:g})",
    )
    speed.add_argument(
        "--read-timeout",
        **_SECONDS,
        help=f"how long to wait for a server's answer (default {ConnectionSettings.read_timeout:g})",
    )
    record = p.group(
        "digest record",
        "update remembers the digests of the files it read, with their stat, and skips an unchanged "
        "file without reading it again",
    )
    record.add_argument(
        "--rehash",
        **_ON,
        help="read and hash every file, ignoring remembered digests (and remember the new ones)",
    )
    record.add_argument(
        "--no-digest-cache",
        dest="digest_cache",
        **_OFF,
        help="neither use nor update the digest record: every file is read",
    )
    record.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where the digest record lives (default $S3PPUT_CACHE_DIR, else ~/.cache/s3pput)",
    )
    p.add_argument(
        "--no-resume",
        dest="resume",
        **_OFF,
        help="start every multipart upload afresh, even where a killed run left one whose parts "
        "are this file's bytes (default: carry it on)",
    )
    out = p.group("output")
    out.add_argument("--verbose", "-v", action="store_true", help="print every file")
    out.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    out.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    out.add_argument("--no-progress", action="store_true", help="no live progress line on a terminal")
    return p


def flag_spelling(parser: _Parser) -> dict[str, str]:
    """How the shell spells each setting: its long option (``put_mode`` -> ``--put``), or ``SOURCE``."""
    spelling = {}
    for action in parser.declared:
        long = [flag for flag in action.option_strings if flag.startswith("--")]
        spelling[action.dest] = long[0] if long else str(action.metavar)  # a positional: its metavar
    # The settings that two options share:
    spelling["secure"] = "--secure/--insecure"
    spelling["filters"] = spelling["include"] = spelling["exclude"] = "--include/--exclude"
    return spelling


FLAGS = flag_spelling(build_parser())


def render(error: UsageError) -> str:
    """A usage error as the shell reads it: settings spelled as flags."""
    return error.render(FLAGS)


def options_from_args(args: argparse.Namespace) -> UploadOptions:
    raw = vars(args)
    if not raw.get("endpoint_url"):
        raw = {**raw, "endpoint_url": environment_endpoint()}  # as the AWS CLI reads it
    options = build_options(raw, connection=build_connection(raw))
    rules = tuple(args.filters or ())
    return dataclasses.replace(options, filters=rules) if rules else options


class Reporter:
    """Prints per-file lines and the progress line as results arrive."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.dry_run = bool(args.dry_run)
        self.quiet = args.quiet
        self.every_file = (self.dry_run or args.verbose) and not args.quiet
        self.files_out = err if args.json else out
        self.err = err
        self.progress = Progress(dry_run=self.dry_run)
        self.live = not (args.quiet or args.no_progress or args.verbose) and err.isatty()
        self._drawn = False

    def __call__(self, result: PutResult) -> None:
        if self.live:
            self.progress.add(result)  # counted only for the live line
        line = self._line(result)
        if line:
            self._print(line, self.err if result.action == "fail" else self.files_out)
        if result.resumed and not self.quiet:
            # Not every file's line, but one that says an earlier run's upload was carried on.
            share = 100 * result.resumed // max(result.bytes, 1)
            self._print(f"resumed {where(result)} at {share}% (parts an earlier run sent)", self.files_out)
        if self.live and self.progress.due():
            self.err.write("\r\033[K" + self.progress.line())
            self.err.flush()
            self._drawn = True

    def _line(self, result: PutResult) -> str:
        """The file's own line: a failure always, the others in a dry run or when verbose."""
        if result.action == "fail":
            return f"s3pput: failed {where(result)}: {result.error}"
        if not self.every_file:
            return ""
        if result.action == "skip" and self.dry_run:
            return f"would skip {where(result)} ({result.reason})"
        if result.action == "skip":
            return f"skip ({result.reason}) {where(result)}"
        return f"{'would ' if self.dry_run else ''}{result.action} {where(result)}"

    def _print(self, line: str, stream: TextIO) -> None:
        self.finish()  # clears the progress line, which the text would otherwise run into
        print(line, file=stream)

    def finish(self) -> None:
        if self._drawn:
            self.err.write("\r\033[K")
            self._drawn = False


class _Output:
    """A text stream that a closed reader cannot break: the first ``BrokenPipeError`` (``| head``)
    silences it, and the upload goes on. The standard streams are then pointed at /dev/null, so
    that the interpreter's last flush at exit fails no more than our writes do."""

    def __init__(self, stream: TextIO) -> None:
        self.stream: TextIO | None = stream

    def write(self, text: str) -> int:
        return self._do(lambda stream: stream.write(text)) or 0

    def flush(self) -> None:
        self._do(lambda stream: stream.flush())

    def isatty(self) -> bool:
        return bool(self._do(lambda stream: stream.isatty()))

    def _do(self, action: Any) -> Any:
        if self.stream is None:
            return None
        try:
            return action(self.stream)
        except OSError as exc:
            if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EPIPE:
                raise
            self._silence()
            return None

    def _silence(self) -> None:
        stream, self.stream = self.stream, None
        if stream in (sys.__stdout__, sys.__stderr__) and stream is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, stream.fileno())
            finally:
                os.close(devnull)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: the run stops as it does for Ctrl-C."""


@contextmanager
def _sigterm_as_ctrl_c() -> Iterator[list[bool]]:
    """While inside, SIGTERM (docker stop, Kubernetes, a supervisor) interrupts the main thread
    as Ctrl-C does; the list yielded holds True once it came. The previous handler is restored
    on the way out. Only the main thread may set a handler: elsewhere this does nothing."""
    came: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield came
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        came.append(True)
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield came
    finally:
        # None: a handler set outside Python, which cannot be put back; the default is.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out_stream = _Output(out or sys.stdout)
    err_stream = _Output(err or sys.stderr)
    with _sigterm_as_ctrl_c() as terminated:
        code = _run(argv, out_stream, err_stream)  # type: ignore[arg-type]
    if terminated and code == EXIT_INTERRUPTED:
        return EXIT_TERMINATED
    return code


def _run(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    try:
        args = build_parser().parse_args(argv)
        options = options_from_args(args)
        _warn_before(args, options, err)
        stats, interrupted = _upload(options, Reporter(args, out, err))
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
    _warn_after(options, stats, err)
    return EXIT_OK if stats.ok else EXIT_FAILED


def _upload(options: UploadOptions, reporter: Reporter) -> tuple[Stats, bool]:
    """The run's stats, and whether Ctrl-C (or SIGTERM) stopped it."""
    try:
        return upload(options, on_result=reporter), False
    except Interrupted as stopped:
        return stopped.stats, True  # type: ignore[return-value]
    finally:
        reporter.finish()


def _warn_before(args: argparse.Namespace, options: UploadOptions, err: TextIO) -> None:
    """One line for each thing the user chose or likely did not mean: unverified TLS, a SOURCE
    given twice, a ``//`` in the prefix, includes that change nothing."""
    if args.verify_ssl is False:
        # One line for the user's explicit choice, instead of urllib3's warning per connection.
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        print("s3pput: warning: TLS certificates are not verified (--no-verify-ssl)", file=err)
    again = list(options.sources)
    for source in distinct_sources(options.sources):
        again.remove(source)  # its first mention: what is left names a SOURCE given before
    if again:
        names = ", ".join(repr(source) for source in again)
        print(f"s3pput: warning: SOURCE {names} names one given before: it is walked once", file=err)
    doubled = doubled_slash_warning(options.prefix)
    if doubled:
        print(f"s3pput: warning: {doubled}", file=err)
    useless = ineffective_includes(args.filters or ())
    if useless:
        globs = " ".join(f"--include {glob!r}" for glob in useless)
        print(
            f"s3pput: warning: {globs} before any --exclude changes nothing: every file is included "
            f"unless an earlier --exclude left it out (e.g. --exclude '*' --include {useless[0]!r})",
            file=err,
        )


def _warn_after(options: UploadOptions, stats: Stats, err: TextIO) -> None:
    """One line when the filters left out every file of a SOURCE that holds some."""
    selection = options.selection()
    if not selection.filters or stats.files_done or options.limit == 0:
        return
    unfiltered = Selection(follow_dir_symlinks=options.follow_symlinks)
    if next(iter(walk(options.sources, options.prefix, unfiltered)), None) is not None:
        print(
            "s3pput: warning: --include/--exclude left out every file of SOURCE (globs match the path "
            "relative to SOURCE; they apply in order and the last match wins: see --help)",
            file=err,
        )


#: set when a second Ctrl-C asked not to wait: the process then exits without joining threads
_abandoned = threading.Event()


def entrypoint() -> None:
    code = main()
    if _abandoned.is_set():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # worker threads still hold requests: leave them (the journal has them)
    sys.exit(code)
