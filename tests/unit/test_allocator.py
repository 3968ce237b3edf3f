"""Freed part buffers go back to the system: the memory bound of large uploads relies on it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent(
    """
    import os, sys
    from airflow_s3pput.allocator import unmap_freed_parts

    took = unmap_freed_parts() if sys.argv[1] == "fixed" else None
    MIB = 2**20

    def rss_mib():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // MIB

    first = bytearray(8 * MIB)
    del first  # the first free of a big buffer is what makes glibc raise its threshold
    before = rss_mib()
    parts = [bytearray(8 * MIB) for _ in range(6)]  # six parts on the wire, touched
    # A buffer allocated meanwhile, above the parts on the heap, pins its top (small objects live
    # in Python's own arenas and may not: the control then depended on where the heap had holes)
    pin = bytearray(MIB)
    del parts
    print(took, rss_mib() - before)
    """
)


def _retained_mib(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    took, retained = out.stdout.split()
    return took, int(retained)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_parts_are_returned_to_the_system() -> None:
    took, retained = _retained_mib("fixed")
    assert took == "True"
    assert retained < 8, f"{retained} MiB of freed parts kept by the allocator"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_without_the_setting_glibc_keeps_them() -> None:
    """The control: proves the probe can see the retention that the setting prevents."""
    _, retained = _retained_mib("default")
    assert retained >= 40
