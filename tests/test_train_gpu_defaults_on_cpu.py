"""The GPU defaults — torch.compile, bf16-mixed autocast, fused AdamW — also run on CPU, so their
code paths are checked here against the plain fp32 eager run, step by step."""

import pytest
import torch

from scaling.training.run_files import read_metrics, train_rows


def step_losses(run_dir) -> list[float]:
    return [r["train/loss"] for r in train_rows(read_metrics(run_dir))]


@pytest.fixture(scope="module")
def eager_losses(tiny_corpus, tmp_path_factory):
    """The plain fp32 eager run's step losses, trained once for every test here."""
    from scaling import load_config, train
    from tests.helpers.runs import tiny_overrides

    run_dir = tmp_path_factory.mktemp("eager") / "run"
    result = train(load_config([], tiny_overrides(tiny_corpus, run_dir)))
    assert result.status == "done"
    return step_losses(run_dir)


@pytest.mark.slow
def test_a_compiled_run_computes_the_eager_losses_and_saves_plain_checkpoint_keys(
    tiny_cfg, tmp_path, eager_losses
):
    from scaling import train
    from scaling.model import build_model

    cfg = tiny_cfg("train.compile=true", "train.checkpoint_every_tokens=5120", run_dir=tmp_path / "compiled")
    result = train(cfg)
    assert result.status == "done"
    assert step_losses(tmp_path / "compiled") == pytest.approx(eager_losses, abs=1e-4)
    # The compiled wrapper stays out of the module tree: checkpoints load into an eager model.
    ckpt = torch.load(
        tmp_path / "compiled" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    keys = {k.removeprefix("model.") for k in ckpt["state_dict"]}
    assert keys == set(build_model(cfg.model).state_dict())


def test_bf16_mixed_autocasts_and_stays_close_to_fp32(tiny_cfg, tmp_path, eager_losses):
    from scaling import train

    assert train(tiny_cfg("train.precision=bf16-mixed", run_dir=tmp_path / "bf16")).status == "done"
    bf16 = step_losses(tmp_path / "bf16")
    assert bf16 == pytest.approx(eager_losses, abs=0.05)
    assert max(abs(a - b) for a, b in zip(bf16, eager_losses, strict=True)) > 1e-5  # bf16 matmuls did run


def test_fused_adamw_matches_the_unfused_update(tiny_cfg, tmp_path, eager_losses):
    from scaling import train
    from scaling.model import build_model
    from scaling.training.optim import build_optimizer

    cfg = tiny_cfg("optim.fused=true", run_dir=tmp_path / "fused")
    assert build_optimizer(build_model(cfg.model), cfg.optim, "cpu").defaults["fused"]  # not silently ignored
    assert train(cfg).status == "done"
    assert step_losses(tmp_path / "fused") == pytest.approx(eager_losses, abs=1e-5)


def test_the_gpu_defaults_are_bf16_mixed_compiled_and_fused():
    from scaling.training.lightning_module import resolve_compile
    from scaling.training.lightning_setup import resolve_accelerator, resolve_precision
    from scaling.training.optim import use_fused

    assert resolve_precision("auto", "gpu") == "bf16-mixed" and resolve_precision("auto", "cpu") == "32-true"
    assert resolve_compile("auto", "cuda") and not resolve_compile("auto", "cpu")
    assert use_fused("auto", "cuda") and not use_fused("auto", "cpu")
    assert resolve_accelerator("cuda") == resolve_accelerator("gpu") == "gpu"


def test_a_chosen_attention_kernel_computes_the_same_losses(tiny_cfg, tmp_path, eager_losses):
    from scaling import train
    from scaling.config_loading import run_id

    cfg = tiny_cfg("train.attention=math", run_dir=tmp_path / "math")
    assert run_id(cfg) == run_id(tiny_cfg())  # an execution detail, not a different run
    assert train(cfg).status == "done"
    assert step_losses(tmp_path / "math") == pytest.approx(eager_losses, abs=1e-4)


def test_an_attention_kernel_the_device_lacks_is_a_one_line_user_error(tiny_corpus, tmp_path, capsys):
    from scaling.cli import main
    from tests.helpers.runs import tiny_overrides

    if torch.cuda.is_available():
        pytest.skip("the memory-efficient kernel exists on CUDA")
    assert main(["train", *tiny_overrides(tiny_corpus, tmp_path / "r", "train.attention=efficient")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: train.attention=efficient has no kernel for 32-true on this cpu; "
                   "use train.attention=auto (or math)")
    assert not (tmp_path / "r").exists()
