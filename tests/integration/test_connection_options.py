"""Where requests go, against the real server: an endpoint under a path, a proxy from an Airflow
connection's ``config_kwargs``, the environment's proxy on the CRT's streamed parts."""

from __future__ import annotations

import http.client
import http.server
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from airflow_s3pput.engine import upload
from airflow_s3pput.errors import UsageError
from airflow_s3pput.options import MIB, UploadOptions
from airflow_s3pput.testing.local_s3 import LocalS3Server
from airflow_s3pput.transport import selection
from tests.helpers import CliRun, list_keys, make_tree
from tests.integration.forward_proxy import ForwardProxy

PREFIX = "/s3-gw"
PROXY_SECRET = "pr0xy-pa55word"
#: one file over the multipart threshold: its parts are the CRT's streamed requests
TREE = {"a.txt": "alpha", "dir/b.txt": "beta", "big.bin": os.urandom(6 * MIB)}
MULTIPART = ("--multipart-threshold", "5MiB", "--part-size", "5MiB")


class PathGateway:
    """A gateway that serves S3 under ``/s3-gw/``, as nginx with ``location /s3-gw/ {
    proxy_pass http://seaweedfs/; proxy_set_header X-Forwarded-Prefix /s3-gw; }``: SeaweedFS
    checks each signature over the path the client signed, prefix included. Anything outside
    the prefix gets 404. ``paths`` holds every request's path as the client sent it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        gateway = self
        self.paths: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def relay(self) -> None:
                gateway.paths.append(self.path)
                if not self.path.startswith(PREFIX + "/"):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
                headers["X-Forwarded-Prefix"] = PREFIX
                upstream_connection = http.client.HTTPConnection(*upstream, timeout=60)
                upstream_connection.request(
                    self.command, self.path[len(PREFIX) :], body=body, headers=headers
                )
                answer = upstream_connection.getresponse()
                data = answer.read()
                upstream_connection.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = relay

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint_url = f"http://127.0.0.1:{self.server.server_address[1]}{PREFIX}/"

    def __enter__(self) -> PathGateway:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(s3_server: LocalS3Server) -> Iterator[PathGateway]:
    with PathGateway(("127.0.0.1", s3_server.port)) as serving:
        yield serving


@pytest.mark.parametrize("transport", ["crt", "boto3"])
def test_an_endpoint_under_a_path_works_on_each_transport(
    cli: Any, gateway: PathGateway, bucket: str, s3_client: Any, tmp_path: Path, transport: str
) -> None:
    source = make_tree(tmp_path / "src", TREE)
    argv = ("--bucket", bucket, "--endpoint-url", gateway.endpoint_url, "--transport", transport, *MULTIPART)
    first: CliRun = cli(*argv, "--json", str(source))
    assert first.code == 0, first.err
    assert first.summary["files_put"] == 3
    stored = list_keys(s3_client, bucket)
    assert set(stored) == {"a.txt", "dir/b.txt", "big.bin"}
    assert stored["big.bin"]["ETag"].strip('"').endswith("-2")  # multipart, parts under the path
    assert any("partNumber=" in path for path in gateway.paths)
    assert all(path.startswith(f"{PREFIX}/{bucket}") for path in gateway.paths), gateway.paths
    again: CliRun = cli(*argv, "--json", str(source))  # listed under the path: nothing to put
    assert again.code == 0, again.err
    assert again.summary["files_put"] == 0 and again.summary["files_skipped"] == 3


@pytest.fixture
def proxy(s3_server: LocalS3Server) -> Iterator[tuple[ForwardProxy, str]]:
    """A forward proxy with a password, and an endpoint only it can reach (``s3.invalid``)."""
    endpoint_host = f"s3.invalid:{s3_server.port}"
    with ForwardProxy(
        {endpoint_host: ("127.0.0.1", s3_server.port)}, auth=("s3pput", PROXY_SECRET)
    ) as running:
        yield running, f"http://{endpoint_host}"


def proxied_options(
    server: LocalS3Server, endpoint: str, proxy_url: str, source: Path, bucket: str, **more: Any
) -> UploadOptions:
    connection = server.connection(endpoint_url=endpoint, client_options=(("proxies", {"http": proxy_url}),))
    sizes = {"multipart_threshold": 5 * MIB, "part_size": 5 * MIB}
    return UploadOptions(bucket=bucket, sources=(str(source),), connection=connection, **sizes, **more)


def test_a_proxy_of_the_connection_carries_every_request(
    s3_server: LocalS3Server,
    proxy: tuple[ForwardProxy, str],
    bucket: str,
    s3_client: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``auto`` takes boto3 (the CRT cannot take a proxy of the connection), says so once, and
    every request goes through the proxy: the endpoint's name resolves nowhere else."""
    monkeypatch.setattr(selection, "crt_available", lambda: True)
    selection._warn.cache_clear()
    forward, endpoint = proxy
    source = make_tree(tmp_path / "src", TREE)
    with caplog.at_level(logging.WARNING):
        stats = upload(proxied_options(s3_server, endpoint, forward.url(), source, bucket))
    assert stats.ok and stats.files_put == 3, stats.to_dict()
    assert set(list_keys(s3_client, bucket)) == {"a.txt", "dir/b.txt", "big.bin"}
    assert forward.seen and all(target.startswith(f"{endpoint}/{bucket}") for _, target in forward.seen)
    warnings = [r.getMessage() for r in caplog.records if "cannot honour" in r.getMessage()]
    assert warnings == [
        "s3pput: warning: the crt transport cannot honour the connection's config_kwargs proxies: using boto3"
    ]
    assert PROXY_SECRET not in caplog.text


def test_a_wrong_proxy_password_fails_without_showing_it(
    s3_server: LocalS3Server, proxy: tuple[ForwardProxy, str], bucket: str, tmp_path: Path
) -> None:
    forward, endpoint = proxy
    source = make_tree(tmp_path / "src", {"a.txt": "alpha"})
    options = proxied_options(s3_server, endpoint, forward.url(password="wrong-pa55"), source, bucket,
                              transport="boto3")  # fmt: skip
    with pytest.raises(UsageError) as raised:
        upload(options)
    assert forward.refused and "wrong-pa55" not in str(raised.value) and PROXY_SECRET not in str(raised.value)


def test_crt_with_a_proxy_of_the_connection_is_refused_before_any_request(
    s3_server: LocalS3Server, proxy: tuple[ForwardProxy, str], bucket: str, tmp_path: Path
) -> None:
    forward, endpoint = proxy
    source = make_tree(tmp_path / "src", {"a.txt": "alpha"})
    with pytest.raises(
        UsageError, match="transport crt cannot honour the connection's config_kwargs proxies"
    ):
        upload(proxied_options(s3_server, endpoint, forward.url(), source, bucket, transport="crt"))
    assert forward.seen == []


def test_the_crt_sends_its_parts_through_the_environments_proxy(
    cli: Any,
    s3_server: LocalS3Server,
    proxy: tuple[ForwardProxy, str],
    bucket: str,
    s3_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CRT's S3 client takes ``HTTP_PROXY``; its streamed parts must too, or a multipart
    upload would bypass the proxy (and here fail: only the proxy knows ``s3.invalid``)."""
    forward, endpoint = proxy
    monkeypatch.setenv("HTTP_PROXY", forward.url())
    for name in ("http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    source = make_tree(tmp_path / "src", TREE)
    run: CliRun = cli("--bucket", bucket, "--endpoint-url", endpoint, "--transport", "crt", *MULTIPART,
                      "--json", str(source))  # fmt: skip
    assert run.code == 0, run.err
    assert list_keys(s3_client, bucket)["big.bin"]["ETag"].strip('"').endswith("-2")
    assert any("partNumber=" in target for _, target in forward.seen)
    assert PROXY_SECRET not in run.out + run.err
