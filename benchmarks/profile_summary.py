"""Summarise a py-spy ``--format raw`` profile (collapsed stacks) by process, category and function.

Usage: ``profile_summary.py PROFILE.txt [--top N]``. The categories are coarse buckets of where
an s3pput run spends CPU (frames matched from the leaf up, first match wins), so a profile can be
compared with another in a few lines; the top functions by self time follow.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

# (category, substrings of a frame): the first frame from the leaf that matches decides.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("md5/hash", ("hashlib", "md5", "etag.py")),
    ("signing (SigV4)", ("botocore/auth.py", "botocore/signers.py")),
    ("socket I/O / http.client", ("http/client.py", "socket.py", "ssl.py", "selectors.py")),
    ("urllib3", ("urllib3/",)),
    ("response parsing", ("botocore/parsers.py", "xml/etree", "ElementTree")),
    ("request serialisation", ("botocore/serialize.py", "botocore/validate.py")),
    (
        "botocore hooks/handlers",
        (
            "botocore/hooks.py",
            "botocore/handlers.py",
            "botocore/utils.py",
            "botocore/useragent.py",
            "botocore/endpoint_provider.py",
            "botocore/regions.py",
            "botocore/retries",
            "botocore/context.py",
        ),
    ),
    ("botocore client/endpoint (other)", ("botocore/",)),
    ("boto3/s3transfer", ("boto3/", "s3transfer/")),
    ("imports / startup", ("<frozen importlib", "_find_and_load", "exec_module")),
    ("multiprocessing / pickling", ("multiprocessing/", "concurrent/futures/process.py", "pickle")),
    ("thread pool / queues", ("concurrent/futures/thread.py", "threading.py", "queue.py")),
    ("file reads / walk", ("walker.py", "os.py", "posixpath.py", "_read_exactly", "_check_unchanged")),
    ("s3pput engine (own code)", ("airflow_s3pput/",)),
]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def parse(path: str) -> list[tuple[list[str], int]]:
    stacks = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            body, _, count = line.rpartition(" ")
            stacks.append((body.split(";"), int(count)))
    return stacks


def process_of(frames: list[str]) -> str:
    first = frames[0]
    if first.startswith("process "):
        command = first.split(":", 1)[1].strip('"')
        if "spawn_main" in ";".join(frames[:4]) or "multiprocessing" in command:
            return "worker process"
        return "main process"
    return "main process"


def category_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in CATEGORIES:
            if any(n in frame for n in needles):
                return name
    return "other"


def leaf_function(frames: list[str]) -> str:
    match = _FRAME.match(frames[-1])
    if not match:
        return frames[-1]
    return f"{match.group('func')} ({match.group('file')})"


def summarise(path: str, top: int = 15) -> str:
    stacks = parse(path)
    total = sum(c for _, c in stacks) or 1
    by_process: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    for frames, count in stacks:
        by_process[process_of(frames)] += count
        by_category[category_of(frames)] += count
        by_leaf[leaf_function(frames)] += count
    lines = [f"{path}: {total} samples (active threads, all processes)"]
    lines.append("by process:")
    lines += [f"  {n:6d} {100 * n / total:5.1f}%  {name}" for name, n in by_process.most_common()]
    lines.append("by category (leaf-most matching frame):")
    lines += [f"  {n:6d} {100 * n / total:5.1f}%  {name}" for name, n in by_category.most_common()]
    lines.append(f"top {top} functions by self samples:")
    lines += [f"  {n:6d} {100 * n / total:5.1f}%  {name}" for name, n in by_leaf.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("profile")
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
