"""A trained model read back from a run dir: its config, weights and tokenizer, for export and evaluation.

Checkpoints are read with ``torch.load(weights_only=True)``: nothing in them is unpickled beyond
tensors, plain containers and numeric numpy arrays (the RNG and sampler states a resumable
checkpoint carries), so opening a checkpoint from someone else cannot run code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling.errors import ScalingError

_MODEL_PREFIX = "model."  # LanguageModel keeps the Transformer as its ``model`` attribute
_NUMPY_DTYPES = ("BoolDType", "Int8DType", "Int16DType", "Int32DType", "Int64DType", "UInt8DType",
                 "UInt16DType", "UInt32DType", "UInt64DType", "Float16DType", "Float32DType", "Float64DType")


@dataclass
class TrainedModel:
    """A run's model in eval mode (CPU, float32) with the tokenizer it was trained with."""

    cfg: Any  # the run's resolved config (a DictConfig)
    model: Any  # scaling.model.Transformer
    tokenizer: Any  # tokenizers.Tokenizer
    eos_token: str
    eos_id: int
    checkpoint: Path  # the file the weights came from


def _numpy_array_globals() -> list:
    """What unpickling a numeric numpy array needs: its reconstructor, ``ndarray`` and dtype classes."""
    import numpy as np

    multiarray = getattr(np, "_core", None) or np.core
    return [multiarray.multiarray._reconstruct, multiarray.multiarray.scalar, np.ndarray, np.dtype,
            *(getattr(np.dtypes, name) for name in _NUMPY_DTYPES if hasattr(np.dtypes, name))]


def load_model_weights(path: str | Path) -> dict:
    """The Transformer's state dict from a training checkpoint (or a plain state-dict file), weights only."""
    import pickle

    import torch

    path = Path(path)
    if path.is_dir():
        raise ScalingError(f"checkpoint {str(path)!r} is a folder (a sharded checkpoint); export needs one "
                           "consolidated .ckpt file")
    if not path.is_file():
        raise ScalingError(f"checkpoint {str(path)!r} not found; pass a .ckpt file of the run")
    try:
        with torch.serialization.safe_globals(_numpy_array_globals()):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ScalingError(f"{path} cannot be read as a weights-only checkpoint ({first[:160]})") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise ScalingError(f"{path} holds no model weights (no state_dict)")
    if any(k.startswith(_MODEL_PREFIX) for k in state):
        state = {k[len(_MODEL_PREFIX):]: v for k, v in state.items() if k.startswith(_MODEL_PREFIX)}
    return state


def run_tokenizer_path(cfg) -> Path:
    """``tokenizer.json`` of the data the run trained on (the first source of a mixture)."""
    data = cfg.data.mixture[0].path if cfg.data.mixture else cfg.data.path
    return Path(data) / "tokenizer.json"


def load_trained(run_dir: str | Path, checkpoint: str | Path | None = None,
                 tokenizer: str | Path | None = None) -> TrainedModel:
    """Build the run's model from ``config.yaml`` and a checkpoint (default ``checkpoints/last.ckpt``).

    ``tokenizer`` overrides the ``tokenizer.json`` of the run's data folder (for a run dir moved
    without its data).
    """
    import torch

    from data_pipelines.tokenizer import eos_id, load_tokenizer
    from scaling.config_loading import load_config
    from scaling.model import build_model
    from scaling.training.run_files import CONFIG_FILE, last_checkpoint

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise ScalingError(f"{str(run_dir)!r} is not a run dir (no {CONFIG_FILE})")
    cfg = load_config([run_dir / CONFIG_FILE])
    path = Path(checkpoint) if checkpoint is not None else last_checkpoint(run_dir)
    if path is None:
        raise ScalingError(f"run {str(run_dir)!r} has no checkpoints/last.ckpt; pass --checkpoint FILE")
    model = build_model(cfg.model)
    state = load_model_weights(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ScalingError(
            f"{path} does not fit the model of {run_dir / CONFIG_FILE} "
            f"({str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e})"
        ) from None
    model.eval().to(torch.float32)
    tok_path = Path(tokenizer) if tokenizer is not None else run_tokenizer_path(cfg)
    tok = load_tokenizer(tok_path)
    eos_name, eos = eos_id(tok)
    return TrainedModel(cfg=cfg, model=model, tokenizer=tok, eos_token=eos_name, eos_id=eos, checkpoint=path)
