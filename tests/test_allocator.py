"""glibc's trim and mmap thresholds: freed memory stays in the process for the next step.

Each case runs in a fresh interpreter, where glibc's thresholds are still at their
start-up values, as in a fresh Ray worker. A thread (as Tune runs a trial) allocates and
frees 45 MB, in blocks the size of a small convnet's activations and of larger ones,
twenty times; the page faults of the last sixteen, once warm, are counted (a count of
kernel events, not a timing).
"""

import subprocess
import sys

import pytest

from share_search.engine.allocator import on_glibc

CHURN = """
import resource, sys, threading
import numpy as np
from share_search.engine.allocator import keep_freed_memory

if sys.argv[1] == "keep":
    assert keep_freed_memory()
faults = []

def steps():
    for i in range(20):
        if i == 4:  # warm: the blocks have been faulted in once
            start = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        blocks = [np.ones(1_000_000) for _ in range(4)] + [np.ones(25_000) for _ in range(64)]  # 8 MB, 200 kB; written
        del blocks
    faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - start)

thread = threading.Thread(target=steps)
thread.start()
thread.join()
print(faults[0])
"""


def faults_in_warm_steps(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not on_glibc(), reason="the thresholds are glibc's")
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    pages_per_step = (64 * 200_000 + 4 * 8_000_000) // 4096
    default = faults_in_warm_steps("default")
    kept = faults_in_warm_steps("keep")
    # with glibc's start-up thresholds, freed blocks go back to the kernel and fault in again
    assert default > pages_per_step
    assert kept < pages_per_step / 10
