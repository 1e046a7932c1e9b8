"""The trainer's CPU allocator setting: freed step buffers are reused instead of page-faulted back in."""

import subprocess
import sys

import pytest

# a step's pattern: several 2 MiB buffers (a 1,024 x 512 logits tensor) allocated and freed over and over;
# prints the page faults of 50 such steps after warm-up, with or without the setting ("unsupported" where
# the C library has no mallopt)
_CHILD = """
import resource, sys, torch
torch.set_num_threads(1)
if sys.argv[1] == "reuse":
    from scaling.training.host_memory import reuse_freed_memory
    if not reuse_freed_memory():
        print("unsupported")
        sys.exit()
def step():
    x = torch.randn(1024, 512)
    ys = [x.exp(), x.log_softmax(-1), torch.zeros(1024, 512), x * 2]
    return sum(float(y[0, 0]) for y in ys)
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
    default = int(_faults("default"))
    # default glibc: fresh 2 MiB buffers fault their pages back in (~300 per step here); kept in the heap,
    # they are reused
    assert default > 50 * 100
    assert int(reused) < default / 4


def test_the_trainer_applies_it_on_cpu(tiny_cfg, monkeypatch):
    import scaling.training.host_memory as host_memory
    from scaling.training.train import train

    calls = []
    monkeypatch.setattr(host_memory, "reuse_freed_memory", lambda: calls.append("cpu") or True)
    result = train(tiny_cfg("train.tokens=2048"))
    assert result.status == "done"
    assert calls == ["cpu"]
