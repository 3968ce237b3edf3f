"""moto's S3 server on ``127.0.0.1``: a second S3 implementation, one that lists keys in
lexicographic order as AWS does (SeaweedFS lists in tree order). Same face as ``LocalS3Server``.

moto accepts any credentials; the ones here are generated so that tests can check that no
secret is printed, as they do against SeaweedFS.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from airflow_s3pput.testing.local_s3 import LoopbackS3, free_port, stop_process


class MotoS3Server(LoopbackS3):
    """A ``moto_server`` process (from ``moto[server]``) on a free loopback port."""

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        self.access_key = "moto" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(24)
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(tempfile.gettempdir(), f"s3pput-moto-{os.getpid()}.log")

    def start(self) -> MotoS3Server:
        self.port = free_port()
        binary = Path(sys.executable).with_name("moto_server")
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.process = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not listen in {self.startup_timeout}s")

    def stop(self) -> None:
        proc, self.process = self.process, None
        stop_process(proc)

    def __enter__(self) -> MotoS3Server:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
