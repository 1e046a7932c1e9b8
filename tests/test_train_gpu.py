"""GPU path: bf16-mixed and torch.compile by default on CUDA, MFU against the device's peak."""

import math

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_a_gpu_run_defaults_to_bf16_and_compile_and_reports_mfu(tiny_cfg):
    from scaling import train
    from scaling.counting import peak_flops

    result = train(tiny_cfg("train.accelerator=gpu", "train.devices=1", "train.tokens=30720"))
    assert result.status == "done" and result.final_val_loss < math.log(512) - 1.0
    name = torch.cuda.get_device_name()
    assert name in result.hardware
    if peak_flops(name) is not None:
        assert 0 < result.mfu < 1


def test_gpu_defaults_track_the_fp32_eager_losses(tiny_cfg, tmp_path):
    from scaling import train
    from scaling.training.run_files import read_metrics, train_rows

    def losses(*extra, name):
        assert (
            train(
                tiny_cfg("train.accelerator=gpu", "train.devices=1", *extra, run_dir=tmp_path / name)
            ).status
            == "done"
        )
        return [r["train/loss"] for r in train_rows(read_metrics(tmp_path / name))]

    fast = losses(name="defaults")  # bf16-mixed, compiled, fused AdamW
    exact = losses("train.precision=32-true", "train.compile=false", "optim.fused=false", name="fp32")
    assert fast == pytest.approx(exact, abs=0.05)


def test_fsdp_on_one_gpu_shards_blocks_and_tracks_the_plain_run(tiny_cfg, tmp_path):
    from scaling import train
    from scaling.training.run_files import read_metrics, train_rows

    def losses(*extra, name):
        result = train(tiny_cfg("train.accelerator=gpu", "train.devices=1", *extra, run_dir=tmp_path / name))
        assert result.status == "done"
        return [(r["train/loss"], r["train/grad_norm"]) for r in train_rows(read_metrics(tmp_path / name))]

    fsdp = losses("train.strategy=fsdp", "train.checkpoint_every_tokens=5120", name="fsdp")
    plain = losses(name="plain")
    assert [loss for loss, _ in fsdp] == pytest.approx([loss for loss, _ in plain], abs=0.05)
    assert [norm for _, norm in fsdp] == pytest.approx([norm for _, norm in plain], rel=0.1)
    assert (tmp_path / "fsdp" / "checkpoints" / "last.ckpt").exists()


def test_flash_attention_runs_in_bf16_and_is_refused_in_fp32(tiny_cfg, tmp_path):
    from scaling import train
    from scaling.errors import ScalingError

    assert train(tiny_cfg("train.accelerator=gpu", "train.devices=1", "train.attention=flash",
                          run_dir=tmp_path / "flash")).status == "done"
    with pytest.raises(ScalingError, match="train.attention=flash has no kernel for 32-true"):
        train(tiny_cfg("train.accelerator=gpu", "train.devices=1", "train.attention=flash",
                       "train.precision=32-true", run_dir=tmp_path / "fp32"))
