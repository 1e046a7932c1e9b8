"""``export_run``: a run's checkpoint as a Hugging Face model folder.

The folder holds ``model.safetensors``, ``config.json``, ``generation_config.json`` and the
tokenizer as a fast tokenizer (``tokenizer.json`` + ``tokenizer_config.json``) with its EOS token
set, so ``AutoModelForCausalLM.from_pretrained(DIR)`` and ``AutoTokenizer.from_pretrained(DIR)``
load it. The folder is written under a temporary name and renamed at the end: an export that fails
leaves nothing behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from scaling.errors import ScalingError
from scaling.export.architectures import ARCHITECTURES, choose_architecture, hf_config, hf_weights
from scaling.trained import TrainedModel, load_trained

PAD_CANDIDATES = ("<|pad|>", "<pad>", "[PAD]")


def _require_transformers():
    try:
        import transformers
    except ModuleNotFoundError:
        raise ScalingError("exporting needs transformers: pip install 'scaling[hf]'") from None
    return transformers


def _pad_token(tok) -> tuple[str | None, int | None]:
    for name in PAD_CANDIDATES:
        idx = tok.token_to_id(name)
        if idx is not None:
            return name, idx
    return None, None


def expected_weight_shapes(config) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of the transformers model for ``config``, without allocating it."""
    import torch
    import transformers

    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_layout(weights: dict, expected: dict[str, tuple[int, ...]], tied: bool, arch: str) -> None:
    """Raise unless ``weights`` has exactly the names and shapes transformers expects (``lm_head`` left
    out when tied)."""
    wanted = {k: s for k, s in expected.items() if not (tied and k == "lm_head.weight")}
    missing, extra = sorted(set(wanted) - set(weights)), sorted(set(weights) - set(wanted))
    wrong = sorted(k for k in set(wanted) & set(weights) if tuple(weights[k].shape) != wanted[k])
    if missing or extra or wrong:  # a bug in the mapping, or a transformers release that renamed weights
        raise RuntimeError(f"{arch} weight layout mismatch: missing {missing[:3]}, unexpected {extra[:3]}, "
                           f"wrong shape {wrong[:3]}")


def write_model_folder(trained: TrainedModel, out: str | Path) -> Path:
    """Write the HF folder of an already loaded :class:`TrainedModel` to ``out`` (must not exist)."""
    transformers = _require_transformers()
    from safetensors.torch import save_file

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ScalingError(f"{out} exists and is not empty; choose a new --out folder")
    m = trained.cfg.model
    arch = choose_architecture(m)
    pad_name, pad_id = _pad_token(trained.tokenizer)
    config = hf_config(arch, m, trained.eos_id, pad_id)
    config.architectures = [ARCHITECTURES[arch]]
    weights = hf_weights(arch, trained.model.state_dict(), m)
    check_layout(weights, expected_weight_shapes(config), bool(m.tie_embeddings), arch)

    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(tmp)
    transformers.GenerationConfig(eos_token_id=trained.eos_id, bos_token_id=trained.eos_id,
                                  pad_token_id=pad_id if pad_id is not None else trained.eos_id,
                                  max_length=m.max_seq_len).save_pretrained(tmp)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=trained.tokenizer, eos_token=trained.eos_token, bos_token=trained.eos_token,
        pad_token=pad_name or trained.eos_token, model_max_length=m.max_seq_len)
    fast.save_pretrained(tmp)
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out


def export_run(run_dir: str | Path, out: str | Path, checkpoint: str | Path | None = None,
               tokenizer: str | Path | None = None) -> Path:
    """Export a run (``checkpoints/last.ckpt`` or ``checkpoint``) as a transformers model folder ``out``.

    LLaMA for RoPE/RMSNorm/SwiGLU configs, Qwen3 when they also use QK-norm, GPT-2 for learned
    positions/LayerNorm/GELU; any other config is refused in one line naming the key, before any
    file is written.
    """
    _require_transformers()
    trained = load_trained(run_dir, checkpoint, tokenizer)
    choose_architecture(trained.cfg.model)
    return write_model_folder(trained, out)
