"""Freed memory kept for the next training step (bnlab.train.allocator): a freed block stays with the process,
and what a run computes is unchanged.

Each case runs in a fresh process, since the setting cannot be undone in this one. The speed and the page
faults it saves are measured by bench/allocator.py, not here.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the setting is glibc's")

# A 24 MiB tensor, the size of a large feature map, allocated and freed; glibc's own account (mallinfo2) of
# the bytes in mappings of their own and of the free bytes its heap keeps, before, while held, after.
ONE_BLOCK = r"""
import ctypes, json, sys
import torch
from bnlab.train.allocator import keep_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
def account():
    info = libc.mallinfo2()
    return {"mapped": info.hblkhd, "heap_free": info.fordblks}
before = account()
block = torch.empty(24 * 2**20, dtype=torch.uint8)
block.fill_(1)
held = account()
del block
print(json.dumps({"kept": kept, "before": before, "held": held, "freed": account()}))
"""

# Adam steps of LeNet-5 with BN and dropout at batch 128: the parameters' exact bytes at the end.
TRAINING = r"""
import hashlib, sys
import torch
import torch.nn.functional as F
from bnlab.models import create_model
from bnlab.train.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.set_num_threads(1)
torch.manual_seed(0)
model = create_model("lenet5", input_shape=(1, 28, 28), num_classes=10, bn="hidden", dropout_hidden=0.5)
model = model.to(memory_format=torch.channels_last)
x = torch.randn(128, 1, 28, 28).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (128,))
opt = torch.optim.Adam(model.parameters(), 1e-3, fused=True)
for _ in range(10):
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()
digest = hashlib.sha256()
for p in model.parameters():
    digest.update(p.detach().contiguous().numpy().tobytes())
print(digest.hexdigest())
"""

MiB = 2**20


def _child(code: str, mode: str) -> str:
    return subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]


def test_a_freed_block_stays_with_the_process_where_glibc_would_unmap_it():
    default, kept = (json.loads(_child(ONE_BLOCK, mode)) for mode in ("default", "keep"))
    assert kept["kept"] is True and default["kept"] is False
    # glibc's default: the block gets a mapping of its own, unmapped when freed (the next step maps it again)
    assert default["held"]["mapped"] - default["before"]["mapped"] >= 24 * MiB
    assert default["freed"]["mapped"] == default["before"]["mapped"]
    assert default["freed"]["heap_free"] < 24 * MiB
    # kept: the block comes from the heap and its bytes stay there, free for the next step
    assert kept["held"]["mapped"] == kept["before"]["mapped"]
    assert kept["freed"]["heap_free"] - kept["held"]["heap_free"] >= 24 * MiB


def test_keeping_freed_memory_changes_no_number_a_run_computes():
    assert _child(TRAINING, "keep") == _child(TRAINING, "default")


def test_keeping_freed_memory_is_idempotent():
    code = ("from bnlab.train.allocator import keep_freed_memory\n"
            "print(keep_freed_memory(), keep_freed_memory())")
    assert _child(code, "") == "True True"
