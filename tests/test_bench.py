"""``scaling bench``: both loops run the settings the trainer would, and the CLI reports a ratio."""

import pytest

from scaling.config_loading import load_config
from scaling.errors import ScalingError
from scaling.training.benchmark import bench_settings
from tests.helpers.runs import run_cli


@pytest.mark.parametrize(("overrides", "expected"), [
    ([], ("cpu", "32-true", False)),
    (["train.compile=true"], ("cpu", "32-true", True)),
    (["train.compile=false", "train.precision=bf16-mixed"], ("cpu", "bf16-mixed", False)),
])
def test_bench_resolves_precision_and_compile_like_the_trainer(overrides, expected):
    assert bench_settings(load_config([], ["train.accelerator=cpu", *overrides])) == expected


def test_bench_refuses_a_precision_the_plain_loop_cannot_reproduce():
    with pytest.raises(ScalingError, match="16-mixed"):
        bench_settings(load_config([], ["train.accelerator=cpu", "train.precision=16-mixed"]))


@pytest.mark.slow
def test_scaling_bench_prints_both_loops_and_their_ratio():
    proc = run_cli("bench", "model=s100k", "train.seq_len=64", "train.micro_batch_size=2", "train.threads=1",
                   "--warmup", "1", "--steps", "3", "--rounds", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert any(line.split()[:1] == ["plain"] and "tokens/s" in line for line in lines)
    assert any(line.split()[:1] == ["trainer"] and "tokens/s" in line for line in lines)
    ratio = float(next(line for line in lines if "ratio trainer / plain" in line).split()[-1])
    assert 0.2 < ratio < 5
