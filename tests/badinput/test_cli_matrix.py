"""Bad input to the ``s3pput`` command: a clear message naming the file or option, never a traceback.

Input refused up front is one line on stderr and exit 2 with nothing uploaded; a problem with one
file is one line naming that file, exit 1, and every other file still lands. No run may print
the server's secret key or a session token (``cli`` checks every run's output).
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput import engine
from airflow_s3pput.testing.local_s3 import LocalS3Server, free_port
from airflow_s3pput.walker import MAX_KEY_BYTES
from tests.helpers import SESSION_TOKEN, CliRunner, assert_clean, assert_usage_error, list_keys, make_tree

from .tls import TlsRelay, self_signed_cert

pytestmark = pytest.mark.timeout(60)

S3PPUT = str(Path(sys.executable).parent / "s3pput")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src", {"a.txt": "a", "d/b.txt": "b"})


# -- refused before anything is uploaded --------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        pytest.param(["--limit", "-1"], ["--limit"], id="negative-limit"),
        pytest.param(["--limit", "lots"], ["--limit", "lots"], id="limit-not-int"),
        pytest.param(["--processes", "0"], ["--processes"], id="zero-processes"),
        pytest.param(["--processes", "-4"], ["--processes"], id="negative-processes"),
        pytest.param(["--processes", "100000"], ["--processes"], id="absurd-processes"),
        pytest.param(["--threads", "0"], ["--threads"], id="zero-threads"),
        pytest.param(["--threads", "99999"], ["--threads"], id="absurd-threads"),
        pytest.param(["--part-size", "1"], ["--part-size"], id="tiny-part"),
        pytest.param(["--part-size", "100TiB"], ["--part-size"], id="absurd-part"),
        pytest.param(["--part-size", "-5MiB"], ["--part-size"], id="negative-part"),
        pytest.param(["--part-size", "big"], ["--part-size", "big"], id="part-not-size"),
        pytest.param(["--multipart-threshold", "0"], ["--multipart-threshold"], id="zero-threshold"),
        pytest.param(["--retries", "-1"], ["--retries"], id="negative-retries"),
        pytest.param(["--retries", "1000"], ["--retries"], id="absurd-retries"),
        pytest.param(["--read-timeout", "nan"], ["--read-timeout"], id="nan-timeout"),
        pytest.param(["--connect-timeout", "0"], ["--connect-timeout"], id="zero-timeout"),
        pytest.param(["--gzip-level", "11"], ["--gzip-level"], id="gzip-level"),
        pytest.param(["--put", "mirror"], ["--put", "mirror"], id="invalid-mode"),
        pytest.param(["--grant", "everyone"], ["--grant", "everyone"], id="invalid-acl"),
        pytest.param(["--transport", "quic"], ["--transport", "quic"], id="invalid-transport"),
        pytest.param(["--header", "Cache-Control"], ["--header", "Cache-Control"], id="header-no-colon"),
        pytest.param(["--header", ":x"], ["--header"], id="header-no-name"),
        pytest.param(["--header", "X-Forwarded-For:1.2.3.4"], ["X-Forwarded-For"], id="unknown-header"),
        pytest.param(["--header", "Authorization:AWS4 x"], ["Authorization"], id="auth-header"),
        pytest.param(["--header", "Cache-Control:a\r\nX-Evil: 1"], ["--header"], id="header-injection"),
        pytest.param(["--bucket", "Bad_Bucket!"], ["bucket name", "Bad_Bucket!"], id="invalid-bucket"),
        pytest.param(["--bucket", "ab"], ["bucket name"], id="short-bucket"),
        pytest.param(["--prefix", "../escape"], ["--prefix", ".."], id="dotdot-prefix"),
        pytest.param(["--prefix", "a/../../b/"], ["--prefix"], id="dotdot-inside-prefix"),
        pytest.param(["--endpoint-url", "ftp://127.0.0.1"], ["--endpoint-url"], id="endpoint-scheme"),
        pytest.param(["--endpoint-url", "http://h/x y"], ["--endpoint-url"], id="endpoint-path"),
    ],
)
def test_refused_options(
    cli: CliRunner, bucket: str, s3_client: Any, src: Path, args: list[str], fragments: list[str]
) -> None:
    run = cli("--bucket", bucket, *args, str(src))
    assert_usage_error(run, *fragments)
    assert list_keys(s3_client, bucket) == {}


@pytest.mark.parametrize(
    ("make_source", "fragments"),
    [
        pytest.param(lambda p: p / "missing", ["does not exist", "missing"], id="missing"),
        pytest.param(lambda p: str(p / "src" / "a.txt") + "/", ["a.txt/"], id="file-as-directory"),
        pytest.param(lambda p: str(p / "src" / "a.txt") + "/x", ["a.txt/x"], id="path-through-file"),
        pytest.param(lambda p: _fifo(p / "pipe"), ["pipe", "neither"], id="fifo"),
        pytest.param(lambda p: Path("/dev/null"), ["/dev/null", "neither"], id="device"),
        pytest.param(
            lambda p: _link(p / "dangling", p / "nowhere"), ["dangling", "does not exist"], id="broken"
        ),
    ],
)
def test_unusable_source(cli: CliRunner, bucket: str, tmp_path: Path, src: Path, make_source: Any,
                         fragments: list[str]) -> None:  # fmt: skip
    run = cli("--bucket", bucket, str(make_source(tmp_path)))
    assert_usage_error(run, *fragments)


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _link(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


def test_empty_directory_is_success_with_nothing_to_do(cli: CliRunner, bucket: str, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    run = cli("--bucket", bucket, "--json", str(tmp_path / "empty"))
    assert run.code == 0, run.err
    assert '"files_put": 0' in run.out and '"files_failed": 0' in run.out


@pytest.mark.parametrize(
    ("env", "args", "fragments"),
    [
        pytest.param(
            {},
            ["--bucket", "no-such-bucket-here"],
            ["no-such-bucket-here", "does not exist"],
            id="missing-bucket",
        ),
        pytest.param({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, [], ["credentials"], id="wrong-secret"),
        pytest.param({"AWS_ACCESS_KEY_ID": "AKIDEXPIRED0000"}, [], ["credentials"], id="unknown-key"),
        pytest.param({"AWS_SESSION_TOKEN": SESSION_TOKEN}, [], ["credentials"], id="expired-token"),
        pytest.param({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, [], ["credentials"], id="none"),
    ],
)
def test_unusable_target(
    cli: CliRunner, bucket: str, src: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
    args: list[str], fragments: list[str], tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for name, value in env.items():
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name)
    run = cli("--bucket", bucket, *args, str(src))
    assert_usage_error(run, *fragments)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["crt", "boto3"])
def test_unreachable_endpoint_is_one_line_quickly(
    cli: CliRunner, bucket: str, src: Path, transport: str
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    run = cli("--bucket", bucket, "--endpoint-url", endpoint, "--transport", transport,
              "--retries", "1", "--connect-timeout", "1", str(src))  # fmt: skip
    assert_usage_error(run, "cannot reach", endpoint)


def test_wrong_region_is_not_testable_on_seaweedfs(cli: CliRunner, bucket: str, src: Path) -> None:
    # SeaweedFS accepts any region in the signature; AWS answers 301 + x-amz-bucket-region, which
    # bucket_check.bucket_error turns into "pass --region" (unit-tested there). Here: no harm done.
    assert cli("--bucket", bucket, "--region", "ap-south-1", str(src)).code == 0


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_endpoint(
    s3_server: LocalS3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    with TlsRelay(("127.0.0.1", s3_server.port), cert, key) as relay:
        yield relay.endpoint_url, cert


@pytest.mark.parametrize("transport", ["crt", "boto3"])
def test_untrusted_certificate_fails_unless_opted_out(
    cli: CliRunner, bucket: str, s3_client: Any, src: Path, tls_endpoint: tuple[str, Path], transport: str
) -> None:
    endpoint, cert = tls_endpoint
    base = ["--bucket", bucket, "--endpoint-url", endpoint, "--transport", transport, "--retries", "0"]
    assert_usage_error(cli(*base, str(src)), "TLS certificate", endpoint, "not trusted")
    assert list_keys(s3_client, bucket) == {}
    # A private CA, then the explicit opt-out: both data planes must honour them.
    trusted = cli(*base, "--prefix", "ca", "--ca-bundle", str(cert), str(src))
    assert trusted.code == 0, trusted.err
    unverified = cli(*base, "--prefix", "insecure", "--no-verify-ssl", str(src))
    assert unverified.code == 0, unverified.err
    assert unverified.err == "s3pput: warning: TLS certificates are not verified (--no-verify-ssl)\n"
    assert set(list_keys(s3_client, bucket)) == {
        f"{p}/{k}" for p in ("ca", "insecure") for k in ("a.txt", "d/b.txt")
    }


@pytest.mark.parametrize("transport", ["crt", "boto3"])
def test_parts_go_up_over_tls_to_a_private_ca(
    cli: CliRunner,
    bucket: str,
    s3_client: Any,
    tmp_path: Path,
    tls_endpoint: tuple[str, Path],
    transport: str,
) -> None:
    """Over TLS the CRT streams the parts on connections of its own: they must verify the
    server's name and the private CA like the rest of the run."""
    endpoint, cert = tls_endpoint
    body = os.urandom(11 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(body)
    run = cli("--bucket", bucket, "--endpoint-url", endpoint, "--transport", transport,
              "--ca-bundle", str(cert), "--prefix", f"tls-parts-{transport}",
              "--multipart-threshold", "5MiB", "--part-size", "5MiB", str(tmp_path))  # fmt: skip
    assert run.code == 0, run.err
    stored = s3_client.get_object(Bucket=bucket, Key=f"tls-parts-{transport}/big.bin")
    assert stored["ETag"].strip('"').endswith("-3")
    assert stored["Body"].read() == body


def test_over_tls_every_call_but_the_bucket_check_goes_through_the_crt(
    cli: CliRunner,
    s3_server: LocalS3Server,
    bucket: str,
    src: Path,
    tls_endpoint: tuple[str, Path],
) -> None:
    """Over TLS, once boto3's bucket check has vouched for the certificate, the CRT carries the
    run, listings included (botocore's parser costs a re-run several times the CPU): its pages
    must verify the private CA and parse as boto3's do, so that an unchanged re-run puts nothing."""
    from airflow_s3pput.options import UploadOptions
    from airflow_s3pput.transport import open_transport
    from airflow_s3pput.transport.boto3_transport import Boto3Transport
    from airflow_s3pput.transport.crt_transport import CrtTransport

    endpoint, cert = tls_endpoint
    base = ["--bucket", bucket, "--endpoint-url", endpoint, "--ca-bundle", str(cert), "--prefix", "tls-rerun"]
    assert cli(*base, str(src)).code == 0
    again = cli(*base, "--json", str(src))
    assert again.code == 0, again.err
    assert again.summary["skipped"] == {"unchanged": 2}
    connection = s3_server.connection(endpoint_url=endpoint, verify=str(cert))
    transport = open_transport(UploadOptions(bucket=bucket, sources=[str(src)], connection=connection))
    try:
        assert isinstance(transport, CrtTransport)  # every call of the run, listings included
        assert transport.session is None  # plain keys sign in C, not through a boto3 session
        check = transport.quick()
        assert isinstance(check, Boto3Transport)  # but the bucket check's: see transport.selection
        check.close()
        page = transport.list_page("tls-rerun/")
        assert sorted(o.key for o in page.objects) == ["tls-rerun/a.txt", "tls-rerun/d/b.txt"]
    finally:
        transport.close()


# -- one bad file fails alone -------------------------------------------------------------------

GOOD = {"ok/one.txt": b"one", "ok/two.bin": os.urandom(3000), "tab\tname.txt": b"tab", "new\nline.txt": b"nl"}


def _bad_tree(root: Path, outside: Path) -> dict[str, str]:
    """Add every kind of bad entry under ``root``; returns name -> expected message fragment."""
    os.mkfifo(root / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    sock.close()
    (root / "devnull").symlink_to("/dev/null")
    (root / "broken").symlink_to(root / "nowhere")
    (root / "loop-a").symlink_to(root / "loop-b")
    (root / "loop-b").symlink_to(root / "loop-a")
    (root / "dirloop").symlink_to(root, target_is_directory=True)
    outside.write_bytes(b"secret stuff outside SOURCE")
    (root / "escape.txt").symlink_to(outside)
    with open(os.path.join(os.fsencode(root), b"latin1-\xe9.txt"), "wb") as f:
        f.write(b"x")
    deep = root / "/".join(["d" * 200] * 6)
    deep.mkdir(parents=True)
    (deep / "long.txt").write_bytes(b"too long a key")
    return {
        "fifo": "not a regular file",
        "sock": "not a regular file",
        "devnull": "not a regular file",
        "broken": "broken symlink",
        "loop-a": "cannot stat",
        "loop-b": "cannot stat",
        "escape.txt": "outside SOURCE",
        "latin1-\\xe9.txt": "not valid UTF-8",
        "long.txt": f"S3 allows at most {MAX_KEY_BYTES}",
    }


@pytest.mark.parametrize("transport", ["crt", "boto3"])
def test_bad_files_fail_alone_and_by_name(
    cli: CliRunner, bucket: str, s3_client: Any, tmp_path: Path, transport: str
) -> None:
    root = make_tree(tmp_path / "src", GOOD)
    expected = _bad_tree(root, tmp_path / "outside.txt")
    run = cli("--bucket", bucket, "--transport", transport, "--follow-symlinks", "--quiet", str(root))
    # --follow-symlinks reads the escaping links' targets and walks into the directory loop
    assert run.code == 1
    lines = run.err.splitlines()
    assert any("dirloop" in line and "symlink loop" in line for line in lines), run.err
    assert not any("escape.txt" in line for line in lines)

    run = cli("--bucket", bucket, "--transport", transport, "--put", "stupid", str(root))
    assert run.code == 1
    lines = run.err.splitlines()
    failed = [line for line in lines if line.startswith("s3pput: failed ")]
    assert len(failed) == len(lines) == len(expected), run.err  # one line per bad file, no more
    for name, fragment in expected.items():
        assert any(name in line and fragment in line for line in failed), (name, run.err)
    assert f"files failed   {len(expected)}" in run.out
    stored = list_keys(s3_client, bucket)
    for key, body in GOOD.items():  # the good ones landed intact, odd names too
        assert stored[key]["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    assert "escape.txt" in stored  # from the --follow-symlinks run only


def test_a_name_with_a_newline_prints_on_one_line(cli: CliRunner, bucket: str, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src", {"ok.txt": "ok"})
    os.mkfifo(root / "two\nlines")
    run = cli("--bucket", bucket, "--verbose", str(root))
    assert run.code == 1
    assert "s3pput: failed " in run.err and "two\\nlines" in run.err
    assert len(run.err.splitlines()) == 1
    assert "FAILED two\\nlines: " in run.out


def test_a_file_that_cannot_be_opened_fails_alone(
    cli: CliRunner, bucket: str, s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root, which reads everything: make one open() fail instead.
    root = make_tree(tmp_path / "src", {"a.txt": "a", "locked.txt": "l", "z.txt": "z"})
    real_open = os.open

    def deny(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path).endswith("locked.txt"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    run = cli("--bucket", bucket, "--transport", "boto3", "--processes", "1", str(root))
    assert run.code == 1
    assert "locked.txt" in run.err and "Permission denied" in run.err
    assert set(list_keys(s3_client, bucket)) == {"a.txt", "z.txt"}


def _change(path: Path, how: str) -> None:
    if how == "grow":
        with open(path, "ab") as f:
            f.write(b"more")
    elif how == "shrink":
        os.truncate(path, 1)
    elif how == "vanish":
        path.unlink()
    elif how == "touch":  # same size, new content and time
        path.write_bytes(b"X" * path.stat().st_size)
        os.utime(path, ns=(1, 1))


@pytest.mark.parametrize("how", ["grow", "shrink", "vanish", "touch"])
@pytest.mark.parametrize("victim", ["small.txt", "big.bin"])
def test_a_file_that_changes_after_the_walk_fails_alone(
    cli: CliRunner, bucket: str, s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    how: str, victim: str,
) -> None:  # fmt: skip
    root = make_tree(
        tmp_path / "src", {"a.txt": "a", "small.txt": "0123456789", "big.bin": os.urandom(6 << 20)}
    )
    real_walk = engine.walk

    def walk_then_change(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for item in real_walk(*args, **kwargs):
            yield item
            if item.key == victim:
                _change(root / victim, how)

    monkeypatch.setattr(engine, "walk", walk_then_change)
    run = cli("--bucket", bucket, "--multipart-threshold", "5MiB", "--part-size", "5MiB", str(root))
    assert run.code == 1, run.err
    assert len(run.err.splitlines()) == 1 and victim in run.err
    assert any(word in run.err for word in ("changed", "disappeared", "shrank", "grew")), run.err
    assert set(list_keys(s3_client, bucket)) == {"a.txt", "small.txt", "big.bin"} - {victim}
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


# -- as a user runs it: real processes ----------------------------------------------------------


def test_real_command_never_shows_a_traceback(s3_server: LocalS3Server, bucket: str, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src", {"a.txt": "a"})
    os.mkfifo(root / "fifo")
    env = dict(os.environ, **s3_server.env())
    cases = [
        (["--bucket", bucket, str(tmp_path / "missing")], 2),
        (["--bucket", bucket, "--part-size", "1", str(root)], 2),
        (
            ["--bucket", bucket, "--endpoint-url", "http://127.0.0.1:1", "--connect-timeout", "1", str(root)],
            2,
        ),
        (["--bucket", bucket, str(root)], 1),
    ]
    for argv, code in cases:
        done = subprocess.run([S3PPUT, *argv], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == code, (argv, done.stderr)
        assert done.stderr.strip(), argv
        assert_clean(done.stdout + done.stderr, s3_server)
