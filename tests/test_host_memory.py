"""The trainer's CPU allocator setting: freed step buffers are reused instead of page-faulted back in."""

import subprocess
import sys

import pytest

# a step's pattern: four 2 MiB buffers live at once (like a 1,024 x 512 logits tensor and its gradients),
# allocated, touched and freed over and over; prints the page faults of 50 such steps after warm-up.
# Both start from glibc's initial threshold (128 KiB) held fixed, so that every such buffer is a fresh mmap
# (glibc's own default raises the threshold as it sees blocks freed, so whether it faults depends on the
# history); "reuse" then applies the trainer's setting. Prints "unsupported" where there is no mallopt.
_CHILD = """
import ctypes, resource, sys, torch
torch.set_num_threads(1)
from scaling.training.host_memory import reuse_freed_memory
libc = ctypes.CDLL(None)
if not hasattr(libc, "gnu_get_libc_version"):
    print("unsupported")
    sys.exit()
libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: glibc's initial one, held fixed
if sys.argv[1] == "reuse":
    assert reuse_freed_memory()
def step():
    live = [torch.empty(512 * 1024).fill_(1.0) for _ in range(4)]
    return sum(float(t[-1]) for t in live)
for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> str:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, check=True)
    return out.stdout.split()[-1]


def test_freed_step_buffers_are_reused_not_faulted_back():
    reused = _faults("reuse")
    if reused == "unsupported":
        pytest.skip("needs glibc's mallopt (Linux)")
    # each fresh 2 MiB mmap faults its 512 pages in again: 4 buffers x 50 steps
    assert int(_faults("mmap")) > 4 * 50 * 400
    assert int(reused) < 4 * 50 * 10  # kept in the heap, the same pages serve every step


def test_the_trainer_applies_it_on_cpu(tiny_cfg, monkeypatch):
    import scaling.training.host_memory as host_memory
    from scaling.training.train import train

    calls = []
    monkeypatch.setattr(host_memory, "reuse_freed_memory", lambda: calls.append("cpu") or True)
    result = train(tiny_cfg("train.tokens=2048"))
    assert result.status == "done"
    assert calls == ["cpu"]
