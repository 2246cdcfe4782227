"""The benchmark's memory figure counts the whole process tree: a stage whose parse workers hold
the memory must not look small because the main process stayed small."""

from __future__ import annotations

import subprocess
import sys

from mlops_assets.bench import TreeMemory

# A parent of ~20 MB whose child holds ~300 MB for a second.
_PARENT = r"""
import subprocess, sys
child = "b = bytearray(300 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(1.5)"
subprocess.run([sys.executable, "-c", child], check=True)
"""


def test_tree_memory_counts_the_children_of_the_measured_process():
    proc = subprocess.Popen([sys.executable, "-c", _PARENT])
    memory = TreeMemory(proc.pid, interval_s=0.05)
    assert proc.wait(timeout=60) == 0
    peak_mb = memory.stop()
    assert 290 <= peak_mb < 600, peak_mb
