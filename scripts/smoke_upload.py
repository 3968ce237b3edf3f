"""One real upload with the installed ``s3pput`` against a SeaweedFS on loopback, checked.

    python scripts/smoke_upload.py [--expect-warning TEXT]

For the environments that the main suite does not cover (``make test-pythons``: each Python;
``make test-floors``: the lowest versions allowed, where awscrt is the one ``boto3[crt]``
pins). Runs the console script as a user would, in a subprocess, and checks: exit status 0,
every file in the bucket with its bytes, no traceback, no secret on the terminal, and, with
``--expect-warning``, exactly one warning line containing TEXT (none otherwise).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from airflow_s3pput.testing.local_s3 import LocalS3Server

#: seconds for an upload of a few files on loopback, a stalled request's retry included
TIMEOUT = 240


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "index.html": b"<html>hello</html>\n",
        "css/site.css": b"body { margin: 0 }\n" * 50,
        "data/empty.bin": b"",
        "data/big.bin": os.urandom(9 * 1024 * 1024),  # over the multipart threshold
    }
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return files


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect-warning", metavar="TEXT")
    args = parser.parse_args(argv)
    s3pput = shutil.which("s3pput", path=str(Path(sys.executable).parent))
    if s3pput is None:
        print("smoke_upload: no s3pput console script beside " + sys.executable, file=sys.stderr)
        return 2
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="s3pput-smoke-") as tmp, LocalS3Server(bucket="smoke") as server:
        files = make_tree(Path(tmp) / "src")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(server.env(), S3PPUT_CACHE_DIR=str(Path(tmp) / "cache"))
        # Its own process group, output to files: if it hangs, its workers go with it, and
        # no pipe held open by a worker blocks this script.
        with open(Path(tmp) / "out", "w+") as out, open(Path(tmp) / "err", "w+") as err:
            process = subprocess.Popen(
                [s3pput, "--bucket", "smoke", "--prefix", "site", str(Path(tmp) / "src")],
                env=env, stdout=out, stderr=err, start_new_session=True,
            )  # fmt: skip
            try:
                returncode = process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                returncode = process.wait()
                problems.append(f"still running after {TIMEOUT} s: killed")
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        output = stdout + stderr
        if returncode != 0:
            problems.append(f"exit status {returncode}")
        if "Traceback" in output:
            problems.append("a traceback")
        if server.secret_key in output:
            problems.append("the secret key on the terminal")
        warnings = [line for line in stderr.splitlines() if "warning" in line.lower()]
        if args.expect_warning:
            if len(warnings) != 1 or args.expect_warning not in warnings[0]:
                problems.append(f"warnings {warnings!r}, expected one with {args.expect_warning!r}")
        elif warnings:
            problems.append(f"unexpected warnings {warnings!r}")
        client = server.client()
        for name, body in files.items():
            try:
                stored = client.get_object(Bucket="smoke", Key=f"site/{name}")["Body"].read()
            except Exception as exc:  # noqa: BLE001 - reported, with the others
                problems.append(f"site/{name}: {type(exc).__name__}")
                continue
            if hashlib.md5(stored).digest() != hashlib.md5(body).digest():
                problems.append(f"site/{name}: other bytes")
    for problem in problems:
        print(f"smoke_upload: {problem}", file=sys.stderr)
    if problems:
        print(output, file=sys.stderr)
        return 1
    print(f"smoke_upload: {len(files)} files uploaded and read back ({sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
