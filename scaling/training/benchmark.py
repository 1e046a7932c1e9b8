"""Throughput of the trainer against a plain PyTorch loop: same model, batches, precision, one process.

Both sides train the same freshly initialised model on the same pre-generated random batches with
AdamW and gradient clipping; the plain loop is the nanoGPT-style ``forward / backward / clip / step``,
ours is :class:`LanguageModel` inside ``lightning.Trainer``. Each side runs ``rounds`` times,
alternating, and the best round counts (the least disturbed by other work on the machine). The
ratio ours / plain is what matters: the trainer's own overhead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from scaling.config_loading import load_config
from scaling.counting import flops_per_token, mfu
from scaling.errors import ScalingError
from scaling.model import build_model
from scaling.training.callbacks_common import synchronize
from scaling.training.host_memory import reuse_freed_memory
from scaling.training.lightning_module import attention_kernel, check_attention_kernel, resolve_compile
from scaling.training.optim import build_optimizer

BENCH_PRECISIONS = ("32-true", "bf16-mixed")  # the precisions the plain loop reproduces


@dataclass
class BenchResult:
    name: str
    tokens_per_sec: float
    mfu: float | None


def _batches(cfg, n: int, device) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    shape = (cfg.train.micro_batch_size, cfg.train.seq_len + 1)
    return [torch.randint(0, cfg.model.vocab_size, shape, generator=g).to(device) for _ in range(n)]


def plain_loop(cfg, batches, warmup: int, steps: int, device, precision: str, compile_model: bool) -> float:
    """Tokens/s of a hand-written loop after ``warmup`` steps."""
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device)
    opt = build_optimizer(model, cfg.optim, device)
    fwd = torch.compile(model) if compile_model else model
    autocast = torch.autocast(
        torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"
    )
    start = None
    for i in range(warmup + steps):
        if i == warmup:
            synchronize(torch.device(device))
            start = time.perf_counter()
        batch = batches[i % len(batches)]
        with autocast, attention_kernel(cfg.train.attention):
            _, loss = fwd(batch[:, :-1], batch[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # the trainer reads every step's loss too (divergence check)
    synchronize(torch.device(device))
    return steps * batches[0][:, :-1].numel() / (time.perf_counter() - start)


def trainer_loop(cfg, batches, warmup: int, steps: int, device, precision: str) -> float:
    """Tokens/s of :class:`LanguageModel` in ``lightning.Trainer`` with our step callbacks, after
    ``warmup``."""
    import lightning.pytorch as pl

    from scaling.training.divergence import DivergenceMonitor
    from scaling.training.lightning_module import LanguageModel
    from scaling.training.metrics import MetricsLogger

    class Clock(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == warmup:
                synchronize(torch.device(device))
                self.start = time.perf_counter()

        def on_train_end(self, trainer, *args):
            synchronize(torch.device(device))
            self.seconds = time.perf_counter() - self.start

    class Batches(pl.LightningDataModule):
        def train_dataloader(self):
            from torch.utils.data import DataLoader

            return DataLoader([batches[i % len(batches)] for i in range(warmup + steps)], batch_size=None)

    torch.manual_seed(0)
    clock = Clock()
    trainer = pl.Trainer(
        accelerator="gpu" if torch.device(device).type == "cuda" else "cpu",
        devices=1,
        precision=precision,
        max_steps=warmup + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[
            DivergenceMonitor(check_every_steps=cfg.train.log_every_steps),
            MetricsLogger(None, cfg.train.log_every_steps),
            clock,
        ],
    )
    trainer.fit(LanguageModel(cfg, log_to_loggers=False), datamodule=Batches())
    return steps * batches[0][:, :-1].numel() / clock.seconds


def bench_settings(cfg) -> tuple[str, str, bool]:
    """``(device, precision, compile)`` for both loops, resolved exactly as the trainer resolves them."""
    from scaling.training.lightning_setup import resolve_accelerator, resolve_precision

    accelerator = resolve_accelerator(cfg.train.accelerator)
    device = "cuda" if accelerator == "gpu" else "cpu"
    precision = resolve_precision(cfg.train.precision, accelerator)
    if precision not in BENCH_PRECISIONS:
        raise ScalingError(f"scaling bench compares the loops at {' or '.join(BENCH_PRECISIONS)}, not "
                           f"train.precision={precision}; pick one of those")
    check_attention_kernel(cfg.train.attention, device, precision)
    return device, precision, resolve_compile(cfg.train.compile, device)


def run_benchmark(
    overrides: list[str], warmup: int = 5, steps: int = 50, rounds: int = 2
) -> list[BenchResult]:
    """Benchmark both loops on the config given by ``overrides``; prints and returns the results."""
    from scaling.training.lightning_setup import quiet_lightning

    cfg = load_config([], overrides)
    device, precision, compile_model = bench_settings(cfg)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.set_float32_matmul_precision("high")
    if device == "cpu":
        reuse_freed_memory()  # as `train` does on a CPU; both loops run in this process, so both have it
    batches = _batches(cfg, 16, device)
    best = {"plain": 0.0, "trainer": 0.0}
    for _ in range(rounds):
        best["plain"] = max(
            best["plain"], plain_loop(cfg, batches, warmup, steps, device, precision, compile_model)
        )
        with quiet_lightning():
            best["trainer"] = max(
                best["trainer"], trainer_loop(cfg, batches, warmup, steps, device, precision)
            )
    name = torch.cuda.get_device_name() if device == "cuda" else None
    fpt = flops_per_token(cfg.model, cfg.train.seq_len)
    results = [BenchResult(k, v, mfu(v, fpt, name)) for k, v in best.items()]
    print(
        f"model {cfg.model.name}, seq {cfg.train.seq_len}, batch {cfg.train.micro_batch_size}, {precision}, "
        f"compile {compile_model}, device {name or 'cpu'} ({torch.get_num_threads()} threads), "
        f"{steps} steps after {warmup} warm-up, best of {rounds}"
    )
    for r in results:
        util = f", MFU {r.mfu:.1%}" if r.mfu is not None else ""
        print(f"  {r.name:8s} {r.tokens_per_sec:12,.0f} tokens/s{util}")
    print(f"  ratio trainer / plain: {best['trainer'] / best['plain']:.3f}")
    return results


def default_overrides(gpu: bool) -> list[str]:
    """The settings of nanoGPT's reference number: gpt2-small, seq 1024, batch 32, bf16, compiled on a GPU;
    a 1.5M-parameter ladder model on CPUs."""
    if gpu:
        return [
            "model=gpt2-small",
            "train.seq_len=1024",
            "train.micro_batch_size=32",
            "train.precision=bf16-mixed",
            "train.compile=true",
        ]
    return ["model=s1.5m", "train.seq_len=256", "train.micro_batch_size=8", "model.vocab_size=8192"]
