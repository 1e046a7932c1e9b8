"""The µP coordinate check: how the size of each layer's activations changes with width over a few steps.

Models of several widths (same depth, 64-wide heads) take a few AdamW steps on one fixed batch of
random tokens; after each step the mean |activation| of the embedding, every block's output and the
logits is recorded. Under a parametrization that transfers (µP) these sizes stay about flat across
width at every step; under the standard one the later steps' activations grow with width — the reason
the best LR of a narrow model is too large for a wide one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from scaling.config import ModelConfig
from scaling.model import build_model


def _optimizer(model, lr: float) -> torch.optim.AdamW:
    from scaling.config import OptimConfig
    from scaling.training.optim import build_optimizer

    return build_optimizer(model, OptimConfig(lr=lr, weight_decay=0.0))


def coordinate_check(
    widths=(64, 128, 256, 512),
    parametrizations=("standard", "mup"),
    *,
    steps: int = 5,
    lr: float = 1e-2,
    n_layer: int = 2,
    base_d_model: int = 64,
    vocab_size: int = 512,
    seq_len: int = 64,
    batch_size: int = 8,
    seed: int = 0,
) -> dict:
    """Per parametrization, width, step and layer: the mean |activation| (``sizes``), and per
    parametrization the growth of the logits' size per doubling of width at the last step (``slope``)."""
    torch.manual_seed(seed)
    batch = torch.randint(
        0, vocab_size, (batch_size, seq_len + 1), generator=torch.Generator().manual_seed(seed)
    )
    out: dict = {"widths": list(widths), "steps": steps, "lr": lr, "sizes": {}, "slope": {}}
    for kind in parametrizations:
        out["sizes"][kind] = {}
        for width in widths:
            cfg = ModelConfig(
                n_layer=n_layer,
                d_model=width,
                n_head=max(1, width // 64),
                vocab_size=vocab_size,
                max_seq_len=seq_len,
                parametrization=kind,
                mup_base_d_model=base_d_model,
            )
            torch.manual_seed(seed)
            model = build_model(cfg)
            sizes = _train_and_measure(model, batch, steps, lr)
            out["sizes"][kind][str(width)] = sizes
        last = [out["sizes"][kind][str(w)][-1]["logits"] for w in widths]
        out["slope"][kind] = float(np.polyfit(np.log2(widths), np.log2(last), 1)[0])
    return out


def _train_and_measure(model, batch: torch.Tensor, steps: int, lr: float) -> list[dict[str, float]]:
    """Mean |activation| per layer after each of ``steps`` AdamW steps on ``batch``."""
    seen: dict[str, float] = {}
    hooks = [
        model.embed.register_forward_hook(lambda m, i, o: seen.__setitem__("embed", o.abs().mean().item()))
    ]
    for j, block in enumerate(model.blocks):
        hooks.append(
            block.register_forward_hook(
                lambda m, i, o, j=j: seen.__setitem__(f"block{j}", o.abs().mean().item())
            )
        )
    optimizer = _optimizer(model, lr)
    records = []
    inputs, targets = batch[:, :-1], batch[:, 1:]
    for _ in range(steps):
        _, loss = model(inputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            logits, _ = model(inputs)
        records.append({**seen, "logits": logits.abs().mean().item()})
    for h in hooks:
        h.remove()
    return records


def plot_coordinate_check(result: dict, path: str | Path) -> str:
    """One panel per parametrization: mean |logits| (solid) and last block output (dashed) against width,
    a line per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(result["sizes"])
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False)
    widths = result["widths"]
    for ax, kind in zip(axes[0], kinds, strict=True):
        for step in range(result["steps"]):
            per_width = [result["sizes"][kind][str(w)][step] for w in widths]
            last_block = max(k for k in per_width[0] if k.startswith("block"))
            (line,) = ax.plot(widths, [r["logits"] for r in per_width], "o-", label=f"step {step + 1}")
            ax.plot(widths, [r[last_block] for r in per_width], "--", color=line.get_color())
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="d_model",
            ylabel="mean |activation|",
            title=f"{kind}: logits (solid), last block (dashed); slope {result['slope'][kind]:+.2f}",
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)
