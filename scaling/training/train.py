"""``train(cfg) -> RunResult``: one run from config to a finished run dir.

The steps: check the config and the run dir (an existing ``config.yaml`` must be the same run; a
finished run is returned as it is), open the data (fast one-line errors), write ``config.yaml``,
build the :class:`LanguageModel`, :class:`TokenDataModule`, callbacks and W&B logger, fit with
Lightning (from ``last.ckpt`` on ``run.resume=auto``, or from a parent's checkpoint for a cooldown
branch), and write ``result.json`` once, atomically: ``done``, ``diverged`` (exit code 3) or
``failed`` (written before the exception propagates).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig

from scaling.config import parse_devices, validate
from scaling.config_loading import load_config, run_id, to_yaml
from scaling.counting import count_params, flops_per_token
from scaling.errors import ScalingError
from scaling.training.run_files import (
    CONFIG_FILE,
    FINISHED_STATUSES,
    STATUS_DIVERGED,
    STATUS_DONE,
    STATUS_FAILED,
    RunResult,
    last_checkpoint,
    metrics_path,
    read_result,
    truncate_metrics,
    write_config,
    write_result,
)
from scaling.wandb_online import require_wandb_login


def _is_main_process() -> bool:
    """Rank 0 of the job, known before Lightning starts (DDP children and SLURM tasks set these)."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK"):
        if int(os.environ.get(var, "0") or 0) != 0:
            return False
    return True


def git_sha() -> str | None:
    """The commit of the source tree the code runs from, None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def resolve_accelerator(setting: str) -> str:
    """``train.accelerator``: ``auto`` is ``gpu`` when CUDA is available, else ``cpu``."""
    if setting == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return "gpu" if setting == "cuda" else setting  # Lightning's two names for one thing


def check_accelerator(accelerator: str) -> None:
    """Refuse ``train.accelerator=gpu`` in one line when no CUDA GPU is visible."""
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise ScalingError(f"train.accelerator={accelerator} but no CUDA GPU is visible here; "
                           "use train.accelerator=auto or cpu, or run on a GPU machine")


def resolve_precision(setting: str, accelerator: str) -> str:
    """``train.precision``: ``auto`` is ``bf16-mixed`` on GPUs, ``32-true`` on CPUs."""
    if setting == "auto":
        return "bf16-mixed" if accelerator == "gpu" else "32-true"
    return setting


def build_strategy(setting: str, accelerator: str):
    """``train.strategy`` for Lightning: ``fsdp`` shards every transformer block (one FSDP unit each,
    so a block's weights are gathered only while it runs) and needs GPUs; others pass through."""
    if setting != "fsdp":
        return setting
    if accelerator != "gpu":
        raise ScalingError("train.strategy=fsdp needs GPUs (Lightning runs FSDP on CUDA only); "
                           "use train.strategy=ddp on CPUs")
    from lightning.pytorch.strategies import FSDPStrategy

    from scaling.model import Block

    return FSDPStrategy(auto_wrap_policy={Block})


def check_run_dir(run_dir: Path, rid: str) -> None:
    """An existing ``config.yaml`` (e.g. written by a sweep launcher) must describe the same run."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return
    try:
        existing = run_id(load_config([path]))
    except ScalingError as e:
        raise ScalingError(f"{path} is not a valid run config ({e}); remove it or choose another run.dir") from None
    if existing != rid:
        raise ScalingError(f"run dir {str(run_dir)!r} holds run {existing} (its config.yaml), not this config's "
                           f"run {rid}; choose another run.dir")


def _read_checkpoint_meta(path: Path) -> dict:
    ckpt = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    return {"step": int(ckpt["global_step"]), "lr": ckpt["optimizer_states"][0]["param_groups"][0]["lr"],
            **ckpt.get("scaling", {})}


def _plan_branch(cfg: DictConfig, batch_tokens: int, total_steps: int) -> tuple[Path, tuple[int, float]]:
    """The parent's checkpoint and ``(start_step, start_lr)`` of a cooldown branch."""
    from scaling.training.checkpointing import branch_checkpoint

    path = branch_checkpoint(cfg.run.branch_from, cfg.run.branch_at_tokens)
    meta = _read_checkpoint_meta(path)
    if meta.get("batch_tokens", batch_tokens) != batch_tokens:
        raise ScalingError(f"the parent's batch is {meta['batch_tokens']} tokens but this run's is {batch_tokens}; "
                           "a branch must keep the trunk's batch (micro_batch_size × seq_len × grad_accum × devices)")
    if meta["step"] >= total_steps:
        raise ScalingError(f"train.tokens={cfg.train.tokens:g} is not past run.branch_at_tokens="
                           f"{cfg.run.branch_at_tokens:g}: a branch's train.tokens is its total at the end")
    return path, (meta["step"], float(meta["lr"]))


def _cluster_plugins() -> list:
    """Inside a SLURM job, keep Lightning's cluster environment but not its requeue handler.

    The sweep launcher (submitit) owns preemption: it requeues the job and the run resumes from its
    checkpoint. Two requeue handlers in one process would race (FACTS.md).
    """
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


_QUIETED = False


def quiet_lightning() -> None:
    """Silence Lightning's advice that does not apply to this trainer (one data stream, no srun).

    Safe to call often: warning filters replace their duplicates, the log filter goes in once.
    """
    global _QUIETED
    for pattern in (r".*does not have many workers.*", r".*`weights_only` was not set.*", r".*srun.*",
                    r".*val_check_interval.*", r".*LeafSpec.*", r".*litlogger.*",
                    r".*defined a `validation_step` but have no `val_dataloader`.*"):
        warnings.filterwarnings("ignore", message=pattern)
    if _QUIETED:
        return
    _QUIETED = True
    import logging

    class _DropTips(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            text = record.getMessage()
            return "litlogger" not in text and "val_check_interval" not in text and "srun" not in text

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropTips())


def _wandb_logger(cfg: DictConfig, rid: str, run_dir: Path):
    if cfg.logging.wandb == "disabled":
        return None
    from lightning.pytorch.loggers import WandbLogger

    save_dir = Path(cfg.logging.wandb_dir or run_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    return WandbLogger(name=cfg.run.name or rid, id=rid, project=cfg.logging.project, entity=cfg.logging.entity,
                       group=cfg.logging.group, job_type=cfg.logging.job_type, tags=list(cfg.logging.tags),
                       save_dir=str(save_dir), offline=cfg.logging.wandb == "offline", resume="allow",
                       log_model=False)


def train(cfg, callbacks=(), run_dir: str | Path | None = None) -> RunResult:
    """Train one model as ``cfg`` says and return its result (also written to ``<run dir>/result.json``).

    ``cfg`` is a config from :func:`scaling.load_config` (or a :class:`~scaling.Config`, or a dict
    of overrides of the defaults). ``callbacks`` are extra Lightning callbacks. A user error
    (config, data, run dir, checkpoint shape) raises :class:`ScalingError` before anything is
    trained; a diverged run returns status ``diverged``.
    """
    import lightning.pytorch as pl

    from scaling.training.checkpointing import TokenCheckpoints
    from scaling.training.data_module import TokenDataModule
    from scaling.training.divergence import DivergenceMonitor
    from scaling.training.lightning_module import LanguageModel, as_config, check_attention_kernel
    from scaling.training.metrics import MetricsLogger

    started = time.time()
    cfg = as_config(cfg)
    validate(cfg)
    rid = run_id(cfg)
    run_dir = Path(run_dir or cfg.run.dir or Path("runs") / rid)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    main = _is_main_process()

    check_run_dir(run_dir, rid)
    previous = read_result(run_dir)
    if previous is not None and previous.status in FINISHED_STATUSES:
        if cfg.run.resume == "auto":
            return previous
        raise ScalingError(f"run dir {str(run_dir)!r} already holds a finished run ({previous.status}); "
                           "pass run.resume=auto to return it, or choose another run.dir")
    resume_from = last_checkpoint(run_dir)
    if resume_from is not None and cfg.run.resume != "auto":
        raise ScalingError(f"run dir {str(run_dir)!r} already has a checkpoint; pass run.resume=auto to continue "
                           "it, or choose another run.dir")

    datamodule = TokenDataModule.from_config(cfg)  # missing or unprepared data fails here, in one line
    accelerator = resolve_accelerator(cfg.train.accelerator)
    check_accelerator(accelerator)
    require_wandb_login(cfg.logging.wandb, "logging.wandb")
    strategy = build_strategy(cfg.train.strategy, accelerator)
    precision = resolve_precision(cfg.train.precision, accelerator)
    devices = parse_devices(cfg.train.devices)
    if main:  # one probe, on the device rank 0 will use (no CUDA context on others' GPUs)
        check_attention_kernel(cfg.train.attention, accelerator, precision,
                               device_index=devices[0] if isinstance(devices, list) else 0)
    torch.set_float32_matmul_precision("high")  # TF32 matmuls on GPUs that have them
    wandb_logger = _wandb_logger(cfg, rid, run_dir)
    monitor = DivergenceMonitor(cfg.train.max_loss)
    metrics = MetricsLogger(run_dir, cfg.train.log_every_steps)
    checkpoints = TokenCheckpoints(run_dir, cfg.train.checkpoint_every_tokens, cfg.train.checkpoint_at_tokens,
                                   skip_if=monitor)
    quiet_lightning()
    trainer = pl.Trainer(
        accelerator=accelerator, devices=devices, num_nodes=cfg.train.num_nodes,
        strategy=strategy, precision=precision,
        accumulate_grad_batches=cfg.train.grad_accum, logger=wandb_logger or False,
        callbacks=[monitor, metrics, checkpoints, *callbacks], enable_checkpointing=False,
        enable_progress_bar=sys.stderr.isatty(), enable_model_summary=False, num_sanity_val_steps=0,
        use_distributed_sampler=False, default_root_dir=str(run_dir), max_steps=-1, max_epochs=-1,
        check_val_every_n_epoch=None, val_check_interval=1,  # set from tokens below
        plugins=_cluster_plugins(),
    )
    world = trainer.num_devices * trainer.num_nodes
    batch_tokens = cfg.train.micro_batch_size * cfg.train.seq_len * cfg.train.grad_accum * world
    total_steps = max(1, math.ceil(cfg.train.tokens / batch_tokens))
    val_every_steps = max(1, round(cfg.train.val_every_tokens / batch_tokens))
    trainer.fit_loop.epoch_loop.max_steps = total_steps
    trainer.val_check_interval = trainer.val_check_batch = val_every_steps * cfg.train.grad_accum

    branch, start_from = None, resume_from
    if cfg.run.branch_from is not None:
        parent_ckpt, branch = _plan_branch(cfg, batch_tokens, total_steps)
        start_from = resume_from or parent_ckpt
    pl.seed_everything(cfg.run.seed, verbose=False)  # initial weights and dropout follow run.seed
    model = LanguageModel(cfg, branch=branch, log_to_loggers=False)

    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, to_yaml(cfg))
        if resume_from is not None:  # rows past the checkpoint are trained again: drop them
            truncate_metrics(run_dir, _read_checkpoint_meta(resume_from)["step"])
        else:  # a fresh start (or a new branch), e.g. after a crash before the first checkpoint
            metrics_path(run_dir).unlink(missing_ok=True)
    if wandb_logger is not None and trainer.is_global_zero:
        counts = count_params(cfg.model)
        wandb_logger.log_hyperparams({"run_id": rid, "derived": {
            "params": counts.total, "params_non_embedding": counts.non_embedding, "batch_tokens": batch_tokens,
            "total_steps": total_steps, "flops_per_token": flops_per_token(cfg.model, cfg.train.seq_len),
            "world_size": world}})

    try:
        # Our own checkpoints hold RNG and sampler states (numpy objects): a full, not weights-only, load.
        trainer.fit(model, datamodule=datamodule, ckpt_path=str(start_from) if start_from else None,
                    weights_only=False)
    except ScalingError:
        raise
    except BaseException as e:
        if trainer.is_global_zero:
            result = _result(cfg, rid, run_dir, trainer, model, metrics, monitor, batch_tokens, started,
                             status=STATUS_FAILED, error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            write_result(run_dir, result)
            _finish_wandb(wandb_logger, result, exit_code=1)
        raise

    if monitor.diverged:
        status, error = STATUS_DIVERGED, None
    elif trainer.interrupted or trainer.global_step < total_steps:
        status, error = STATUS_FAILED, f"interrupted at step {trainer.global_step} of {total_steps}"
    else:
        status, error = STATUS_DONE, None
    result = _result(cfg, rid, run_dir, trainer, model, metrics, monitor, batch_tokens, started, status, error)
    if trainer.is_global_zero:
        write_result(run_dir, result)
        _finish_wandb(wandb_logger, result, exit_code=0 if status == STATUS_DONE else 1)
    return result


def _result(cfg, rid, run_dir, trainer, model, metrics, monitor, batch_tokens, started, status, error=None) -> RunResult:
    counts = count_params(cfg.model)
    tokens = trainer.global_step * batch_tokens
    tokens_per_sec, run_mfu = metrics.run_throughput(trainer, model)
    from scaling.training.callbacks_common import hardware

    return RunResult(
        status=status, run_id=rid, run_dir=str(run_dir), params=counts.total,
        params_non_embedding=counts.non_embedding, tokens=tokens,
        flops=flops_per_token(cfg.model, cfg.train.seq_len) * tokens,
        final_val_loss=metrics.final_val_loss, best_val_loss=metrics.best_val_loss, val_bpb=metrics.final_val_bpb,
        final_train_loss=metrics.final_train_loss, tokens_per_sec=tokens_per_sec, mfu=run_mfu, wall_time_s=metrics.wall_time(),
        hardware=hardware(trainer.strategy.root_device, trainer.world_size), seed=cfg.run.seed, git_sha=git_sha(),
        steps=trainer.global_step, lr=cfg.optim.lr, batch_tokens=batch_tokens, seq_len=cfg.train.seq_len,
        model=cfg.model.name, diverged_at_step=monitor.diverged_at_step, last_good_loss=monitor.last_good_loss,
        parent=({"run_dir": str(cfg.run.branch_from), "tokens": cfg.run.branch_at_tokens}
                if cfg.run.branch_from is not None else None),
        error=error, extra=dict(metrics.final_named),
    )


def _finish_wandb(logger, result: RunResult, exit_code: int) -> None:
    if logger is None:
        return
    import wandb

    summary = {k: v for k, v in result.to_json().items() if v is not None and not isinstance(v, dict)}
    logger.experiment.summary.update(summary)
    wandb.finish(exit_code=exit_code)
