"""The CRT threads keep one Python thread state each (``transport.crt_threads``), and a process
that kept them still exits cleanly: small files, a streamed multipart file, then interpreter exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.helpers import list_keys, make_tree

SCRIPT = """
import json, sys
from airflow_s3pput.engine import upload
from airflow_s3pput.settings import build_connection, build_options
from airflow_s3pput.transport import crt_threads

raw = {"bucket": sys.argv[1], "source": [sys.argv[2]], "put_mode": "stupid", "processes": 1,
       "transport": "crt", "multipart_threshold": "5MiB", "part_size": "5MiB"}
stats = upload(build_options(raw, connection=build_connection({"endpoint_url": sys.argv[3]})))
print(json.dumps({"put": stats.files_put, "failed": stats.failed, "kept": crt_threads.kept_threads()}))
"""


def test_crt_threads_keep_their_state_and_the_process_exits_cleanly(
    s3_server: LocalS3Server, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    files = {f"small/{i}.txt": f"body {i}" for i in range(40)}
    src = make_tree(tmp_path / "src", files)
    (src / "big.bin").write_bytes(os.urandom(12 * 1024 * 1024))  # 3 streamed parts of 5 MiB
    env = dict(os.environ, **s3_server.env())
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, bucket, str(src), s3_server.endpoint_url],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no "Fatal Python error" at exit, no warning
    result = json.loads(done.stdout)
    assert (result["put"], result["failed"]) == (41, 0)
    # The CRT threads that called into Python kept their state (counted once each: the event
    # loop threads may have ended by now, with the transports, so no upper bound here).
    assert result["kept"] >= 1
    assert set(list_keys(s3_client, bucket)) == {*files, "big.bin"}
