"""train/memory.py: with freed memory kept, reallocating a large block no longer page-faults."""

import subprocess
import sys
from pathlib import Path

import pytest

from train.memory import is_glibc

ROOT = Path(__file__).resolve().parents[1]

# Allocates, touches and frees a 64 MiB block five times (after a first time) and prints the
# page faults those five took. 64 MiB is above glibc's largest dynamic mmap threshold (32 MiB),
# so by default every allocation is a fresh mapping: 16,384 faults each.
FAULTS = f"""
import resource, sys
sys.path.insert(0, {str(ROOT)!r})
from train.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = bytearray(64 << 20)
del block
before = faults()
for _ in range(5):
    block = bytearray(64 << 20)  # zero-filled: every page is written
    del block
print(faults() - before)
"""


def page_faults(mode: str) -> int:
    run = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
    return int(run.stdout)


@pytest.mark.slow
@pytest.mark.skipif(not is_glibc(), reason="mallopt's thresholds are glibc's")
def test_kept_memory_is_reused_without_page_faults() -> None:
    assert page_faults("default") > 5 * 16384 // 2  # each 64 MiB block mapped afresh
    assert page_faults("keep") < 1000  # the first block's pages, reused


def test_keep_freed_memory_reports_whether_it_applied() -> None:
    from train.memory import keep_freed_memory

    assert keep_freed_memory() is is_glibc()
