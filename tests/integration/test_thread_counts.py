"""Every thread and process count uploads every file, on both transports (a real SeaweedFS).

``--threads 1-3`` once uploaded nothing and exited 0: the run ended at the first directory
holding more than ``threads`` x 4 files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CliRunner, list_keys, make_tree

TREE = {f"crowded/f{i:03}.txt": f"file {i}\n" for i in range(40)} | {
    f"nested/d{i % 3}/g{i:02}.txt": f"g {i}\n" for i in range(12)
}


@pytest.mark.parametrize("transport", ["crt", "boto3"])
@pytest.mark.parametrize(("processes", "threads"), [(1, 1), (1, 2), (1, 3), (2, 1), (2, 3)])
def test_every_file_lands_with_few_threads(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path, transport: str, processes: int, threads: int
) -> None:
    src = make_tree(tmp_path / "src", TREE)
    argv = ["--bucket", bucket, "--transport", transport, "--json", str(src)]
    run = cli("--processes", str(processes), "--threads", str(threads), *argv)
    assert run.code == 0, run.err
    assert (run.summary["files_put"], run.summary["files_failed"]) == (len(TREE), 0)
    assert set(list_keys(s3_client, bucket)) == set(TREE)
    rerun = cli("--processes", str(processes), "--threads", str(threads), *argv)
    assert (rerun.code, rerun.summary["files_put"]) == (0, 0)
