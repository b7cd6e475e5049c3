"""Keep the memory a training step frees for the next step, instead of handing it back to the OS.

A CPU training step allocates and frees the same activations and gradients every step. glibc's
malloc serves a block above its mmap threshold (128 KiB at first, rising to the largest block freed
so far) with a fresh mapping, and gives the top of its heap back to the OS once more than twice that
threshold is free. Either way the next step's tensors land on pages the kernel must map and zero
again on first touch: LeNet-5 with BN at batch 128 took about 1,600 minor page faults per step and
21.5 ms, against 16 faults and 16.7 ms with freed memory kept (bench/allocator.py, every model).
PyTorch's CPU performance tuning guide makes the same point and suggests swapping in jemalloc or
TCMalloc; two mallopt calls give glibc's own allocator the same habit without a library to install.

What a run computes does not change (the same operations on the same values; only where the bytes
live: tests/test_allocator.py). A process keeps the memory of its largest step, which it held anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt parameter numbers (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2, 32 MiB on 64-bit: a block larger than that
# (a dataset, a VGG activation at batch 128 on CIFAR-10) is still mapped on its own.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
# mallopt takes an int: never trim free memory at the heap's top below 2 GiB.
TRIM_THRESHOLD_BYTES = 2**31 - 1


def keep_freed_memory() -> bool:
    """Have glibc reuse freed blocks of up to 32 MiB rather than unmap them; True if it is in effect.

    Safe to call more than once (a fork of the warm server inherits it) and a no-op returning False where
    the C library is not glibc (macOS, musl), where nothing is known to need it.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    # mallopt returns 1 on success (setting the same values again is harmless); fixing either value also
    # stops glibc's dynamic adjustment of both
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) \
        and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
