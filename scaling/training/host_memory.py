"""Keep freed host memory for reuse, so CPU training does not page-fault its buffers back in every step.

glibc's allocator hands large blocks back to the operating system: a block above its mmap threshold
(128 KiB at start, raised as it sees such blocks freed) is a fresh ``mmap`` each time, and the heap's
free top is trimmed once it passes twice that. A training step allocates and frees the same buffers
over and over (the logits and their gradient alone are 2 MiB at a 512-token vocabulary and 1,024 tokens
per batch), so on a CPU a step often page-faults megabytes back in: on the 2-core dev box (a KVM guest,
where a fault is dear), 300-500 faults per step of a demo-sized model and 2-12% of its step time
(``benchmarks/bench_host_memory.py``). Raising the two thresholds keeps those blocks in the heap; the
process then holds on to its peak working set, which a training process reaches every step anyway.
Losses are unchanged bit for bit: only where memory comes from moves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# blocks up to this size come from the heap (glibc's ceiling for the threshold on 64-bit systems)
MMAP_THRESHOLD_BYTES = 32 << 20
# free memory the heap keeps at its top before returning any to the operating system
TRIM_THRESHOLD_BYTES = 1 << 30


def reuse_freed_memory() -> bool:
    """Make glibc keep freed blocks of up to 32 MiB, and up to 1 GiB of free heap, for reuse.

    Process-wide and lasting; call it in a process that trains on the CPU. Returns whether it took effect
    (False off Linux or where the C library is not glibc, which has no ``mallopt``; nothing changes then).
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
