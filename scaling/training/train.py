"""``train(cfg) -> RunResult``: one run from config to a finished run dir, in named steps.

1. Check the run dir (:mod:`scaling.training.run_dir`): writable, the trainer's own (an existing
   ``config.yaml`` must be the same run), finished (returned as it is on ``run.resume=auto``), and
   what to resume from (``last.ckpt``, or ``previous.ckpt`` when the last one is damaged).
2. Resolve everything the Trainer needs before it exists: data (fast one-line errors), devices and
   world size, the global batch, the number of steps and the validation interval, a branch's parent.
3. Build the Trainer with those numbers, the callbacks and the W&B logger; write ``config.yaml``.
4. Fit, from the checkpoint (read weights-only) on a resume or a cooldown branch.
5. Write ``result.json`` once, atomically: ``done``, ``diverged`` (exit code 3) or ``failed``
   (written before the exception propagates; ``interrupted`` / ``cancelled (SIGTERM)`` for stops).
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from scaling.config import parse_devices, validate
from scaling.config_loading import resolve_vocab_size, run_id, to_yaml
from scaling.counting import count_params, flops_per_token, global_batch_tokens
from scaling.errors import EXIT_STOPPED, ScalingError
from scaling.training.eval_callback import DownstreamEval
from scaling.training.lightning_setup import (
    DEEPSPEED_STAGES,
    build_strategy,
    check_accelerator,
    check_strategy,
    cluster_plugins,
    device_count,
    quiet_lightning,
    resolve_accelerator,
    resolve_precision,
)
from scaling.training.run_dir import (
    check_ours,
    check_same_run,
    check_writable_dir,
    previous_result,
    remove_trainer_files,
)
from scaling.training.run_files import (
    FINISHED_STATUSES,
    STATUS_DIVERGED,
    STATUS_DONE,
    STATUS_FAILED,
    RunResult,
    last_checkpoint,
    metrics_path,
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


def _wandb_logger(cfg: DictConfig, rid: str, run_dir: Path):
    """W&B through Lightning, silent on the console (W&B's own log stays in its run folder)."""
    if cfg.logging.wandb == "disabled":
        return None
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    save_dir = Path(cfg.logging.wandb_dir or run_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    mode = "offline" if cfg.logging.wandb == "offline" else "online"
    logger = WandbLogger(name=cfg.run.name or rid, id=rid, project=cfg.logging.project,
                         entity=cfg.logging.entity, group=cfg.logging.group, job_type=cfg.logging.job_type,
                         tags=list(cfg.logging.tags), save_dir=str(save_dir), offline=mode == "offline",
                         resume="allow", log_model=False,
                         settings=wandb.Settings(silent=True, mode=mode,
                                                 x_save_requirements=cfg.logging.save_requirements))
    # Silent from W&B's set-up on, before the run starts: its notices and run summaries go to the
    # run's debug log only.
    wandb.setup(settings=wandb.Settings(silent=True, mode=mode))
    return logger


@dataclass(frozen=True)
class _Plan:
    """What the Trainer is built from, all resolved before it exists."""

    accelerator: str
    devices: object
    precision: str
    world_size: int
    batch_tokens: int  # global batch in tokens
    total_steps: int
    val_every_steps: int


def _plan(cfg: DictConfig) -> _Plan:
    accelerator = resolve_accelerator(cfg.train.accelerator)
    check_accelerator(accelerator)
    check_strategy(cfg.train.strategy, accelerator)
    devices = parse_devices(cfg.train.devices)
    world = device_count(accelerator, devices) * cfg.train.num_nodes
    batch_tokens = global_batch_tokens(cfg, world)
    return _Plan(accelerator=accelerator, devices=devices,
                 precision=resolve_precision(cfg.train.precision, accelerator), world_size=world,
                 batch_tokens=batch_tokens, total_steps=max(1, math.ceil(cfg.train.tokens / batch_tokens)),
                 val_every_steps=max(1, round(cfg.train.val_every_tokens / batch_tokens)))


def _build_trainer(cfg: DictConfig, plan: _Plan, callbacks: list, logger):
    import lightning.pytorch as pl

    trainer = pl.Trainer(
        accelerator=plan.accelerator, devices=plan.devices, num_nodes=cfg.train.num_nodes,
        strategy=build_strategy(cfg.train.strategy, plan.accelerator), precision=plan.precision,
        accumulate_grad_batches=cfg.train.grad_accum, logger=logger or False, callbacks=callbacks,
        # deepspeed clips inside its engine, from the Trainer's setting; other strategies clip in the module
        gradient_clip_val=(cfg.optim.grad_clip or None) if cfg.train.strategy in DEEPSPEED_STAGES else None,
        enable_checkpointing=False, enable_progress_bar=sys.stderr.isatty(), enable_model_summary=False,
        num_sanity_val_steps=0, use_distributed_sampler=False, max_steps=plan.total_steps, max_epochs=-1,
        check_val_every_n_epoch=None, val_check_interval=plan.val_every_steps * cfg.train.grad_accum,
        plugins=cluster_plugins(),
    )
    if trainer.num_devices * trainer.num_nodes != plan.world_size:
        raise RuntimeError(f"Lightning chose {trainer.num_devices * trainer.num_nodes} processes, "
                           f"the plan {plan.world_size}")
    return trainer


def _check_run_dir(cfg: DictConfig, rid: str, run_dir: Path, overwrite: bool):
    """``(finished result or None, (checkpoint path, contents) to resume from or None)``."""
    from scaling.training.checkpointing import check_strategy_reads, resume_checkpoint

    check_writable_dir(run_dir)
    if overwrite:
        if run_dir.is_dir() and _is_main_process():
            remove_trainer_files(run_dir)
        return None, None
    check_same_run(run_dir, rid)
    check_ours(run_dir)
    previous = previous_result(run_dir)
    if previous is not None and previous.status in FINISHED_STATUSES:
        if cfg.run.resume == "auto":
            return previous, None
        raise ScalingError(f"run dir {str(run_dir)!r} already holds a finished run ({previous.status}); "
                           "pass run.resume=auto to return it, --overwrite to train it again, or choose "
                           "another run.dir")
    if cfg.run.resume != "auto":
        if last_checkpoint(run_dir) is not None:
            raise ScalingError(f"run dir {str(run_dir)!r} already has a checkpoint; pass run.resume=auto to "
                               "continue it, --overwrite to start it again, or choose another run.dir")
        return None, None
    resume = resume_checkpoint(run_dir)
    if resume is not None:
        check_strategy_reads(*resume, cfg.train.strategy)
    return None, resume


def _plan_branch(cfg: DictConfig, batch_tokens: int, total_steps: int) -> tuple[Path, tuple[int, float]]:
    """The parent's checkpoint and ``(start_step, start_lr)`` of a cooldown branch."""
    from scaling.training.checkpointing import branch_checkpoint, check_strategy_reads, load_checkpoint

    path = branch_checkpoint(cfg.run.branch_from, cfg.run.branch_at_tokens)
    ckpt = load_checkpoint(path)
    check_strategy_reads(path, ckpt, cfg.train.strategy)
    meta, step = ckpt.get("scaling", {}), int(ckpt["global_step"])
    if meta.get("batch_tokens", batch_tokens) != batch_tokens:
        raise ScalingError(f"the parent's batch is {meta['batch_tokens']} tokens but this run's is "
                           f"{batch_tokens}; a branch must keep the trunk's batch "
                           "(micro_batch_size × seq_len × grad_accum × devices)")
    if step >= total_steps:
        raise ScalingError(f"train.tokens={cfg.train.tokens:g} is not past run.branch_at_tokens="
                           f"{cfg.run.branch_at_tokens:g}: a branch's train.tokens is its total at the end")
    return path, (step, float(meta["next_lr"]))


def _start_files(cfg: DictConfig, run_dir: Path, resume: tuple[Path, dict] | None) -> None:
    """Write ``config.yaml`` and make ``metrics.jsonl`` end where training restarts."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, to_yaml(cfg))
    if resume is not None:  # rows past the checkpoint are trained again: drop them
        truncate_metrics(run_dir, int(resume[1]["global_step"]))
    else:  # a fresh start (or a new branch), e.g. after a crash before the first checkpoint
        metrics_path(run_dir).unlink(missing_ok=True)


def _log_run_info(cfg: DictConfig, rid: str, plan: _Plan, wandb_logger) -> None:
    """The derived numbers to W&B, and one line saying where the offline run is and how to sync it."""
    counts = count_params(cfg.model)
    wandb_logger.log_hyperparams({"run_id": rid, "derived": {
        "params": counts.total, "params_non_embedding": counts.non_embedding,
        "batch_tokens": plan.batch_tokens,
        "total_steps": plan.total_steps, "flops_per_token": flops_per_token(cfg.model, cfg.train.seq_len),
        "world_size": plan.world_size}})
    if cfg.logging.wandb == "offline":
        folder = wandb_logger.experiment.settings.sync_dir
        print(f"wandb: offline run in {folder}; sync with: wandb sync {folder}", file=sys.stderr)


def failure_message(error: BaseException, trainer) -> str:
    """One line for ``result.json``'s ``error`` of a run that stopped on ``error`` (a SIGTERM writes no
    result: the run stays resumable, see :func:`train`)."""
    if isinstance(error, KeyboardInterrupt) or (isinstance(error, SystemExit) and trainer.interrupted):
        return "interrupted"  # Ctrl-C: Lightning shuts down and exits with SystemExit(1)
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def train(cfg, callbacks=(), run_dir: str | Path | None = None, overwrite: bool = False,
          progress_every_s: float = 30.0) -> RunResult:
    """Train one model as ``cfg`` says and return its result (also written to ``<run dir>/result.json``).

    ``cfg`` is a config from :func:`scaling.load_config` (or a :class:`~scaling.Config`, or a dict
    of overrides of the defaults). ``callbacks`` are extra Lightning callbacks. A user error
    (config, data, run dir, checkpoint shape) raises :class:`ScalingError` before anything is
    trained; a diverged run returns status ``diverged``. ``overwrite`` first removes the files the
    trainer writes in the run dir (and only those), so the run starts again. When stderr is not a
    terminal (logs of SLURM jobs, CI), a progress line is printed every ``progress_every_s`` seconds
    (0: never).
    """
    import lightning.pytorch as pl
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from scaling.training.callbacks_common import RankHosts
    from scaling.training.checkpointing import TokenCheckpoints
    from scaling.training.data_module import TokenDataModule
    from scaling.training.divergence import DivergenceMonitor
    from scaling.training.host_memory import reuse_freed_memory
    from scaling.training.lightning_module import LanguageModel, as_config, check_attention_kernel
    from scaling.training.metrics import MetricsLogger
    from scaling.training.progress import ProgressLine

    started = time.time()
    cfg = as_config(cfg)
    validate(cfg)
    vocab_note = resolve_vocab_size(cfg, required=True)  # `auto` becomes the data's number before the id
    rid = run_id(cfg)
    run_dir = Path(run_dir or cfg.run.dir or Path("runs") / rid)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    main = _is_main_process()
    if vocab_note and main:
        print(f"note: {vocab_note}", file=sys.stderr)

    # 1. The run dir: ours, writable, not finished; what to resume from.
    finished, resume = _check_run_dir(cfg, rid, run_dir, overwrite)
    if finished is not None:
        return finished

    # 2. Everything the Trainer needs, resolved before it is built (fast one-line errors first).
    plan = _plan(cfg)  # a strategy or accelerator this machine cannot run fails here, in one line
    if plan.accelerator == "cpu":
        reuse_freed_memory()  # the step's buffers stay in the heap instead of page-faulting back each step
    datamodule = TokenDataModule.from_config(cfg)  # missing or unprepared data fails here, in one line
    require_wandb_login(cfg.logging.wandb, "logging.wandb")
    if main:  # one probe, on the device rank 0 will use (no CUDA context on others' GPUs)
        check_attention_kernel(cfg.train.attention, plan.accelerator, plan.precision,
                               device_index=plan.devices[0] if isinstance(plan.devices, list) else 0)
    branch, start_from = None, resume[0] if resume else None
    if cfg.run.branch_from is not None:
        parent_ckpt, branch = _plan_branch(cfg, plan.batch_tokens, plan.total_steps)
        start_from = start_from or parent_ckpt
    torch.set_float32_matmul_precision("high")  # TF32 matmuls on GPUs that have them

    # 3. The Trainer, with its length and validation interval fixed at construction.
    monitor = DivergenceMonitor(cfg.train.max_loss, check_every_steps=cfg.train.log_every_steps)
    metrics = MetricsLogger(run_dir, cfg.train.log_every_steps)
    checkpoints = TokenCheckpoints(run_dir, cfg.train.checkpoint_every_tokens, cfg.train.checkpoint_at_tokens,
                                   skip_if=monitor)
    extra = [ProgressLine(progress_every_s)] if progress_every_s > 0 and not sys.stderr.isatty() else []
    downstream = DownstreamEval.from_config(cfg, datamodule, run_dir)  # None without eval.tasks
    extra += [downstream] if downstream else []
    rank_hosts = RankHosts()  # every rank's hostname, for result.json
    with quiet_lightning():
        wandb_logger = _wandb_logger(cfg, rid, run_dir)
        trainer = _build_trainer(cfg, plan, [monitor, metrics, checkpoints, rank_hosts, *extra, *callbacks],
                                 wandb_logger)
        pl.seed_everything(cfg.run.seed, verbose=False)  # initial weights and dropout follow run.seed
        model = LanguageModel(cfg, branch=branch, log_to_loggers=False)
        if main:
            _start_files(cfg, run_dir, resume)
        if wandb_logger is not None and trainer.is_global_zero:
            _log_run_info(cfg, rid, plan, wandb_logger)

        # 4. Fit (from last.ckpt on a resume, or a parent's checkpoint for a branch).
        try:
            # Checkpoints hold tensors and plain values only: loaded without running code from the file.
            trainer.fit(model, datamodule=datamodule, ckpt_path=str(start_from) if start_from else None,
                        weights_only=True)
        except ScalingError:
            raise
        except SIGTERMException:  # the scheduler stops the job (preemption, requeue, scancel): resumable,
            raise SystemExit(EXIT_STOPPED) from None  # so no failed result.json that would end the run
        except BaseException as e:
            if trainer.is_global_zero:
                result = _result(
                    cfg,
                    rid,
                    run_dir,
                    trainer,
                    model,
                    metrics,
                    monitor,
                    rank_hosts.hosts,
                    plan.batch_tokens,
                    started,
                    status=STATUS_FAILED,
                    error=failure_message(e, trainer),
                )
                write_result(run_dir, result)
                _finish_wandb(wandb_logger, result, exit_code=1)
            raise

    # 5. The result (a run resumed from its final checkpoint validates the model it restored).
    finished_steps = not monitor.diverged and trainer.global_step >= plan.total_steps
    if finished_steps and metrics.last_val_step != trainer.global_step:
        with quiet_lightning():
            trainer.validate(model, datamodule=datamodule, verbose=False)
    if monitor.diverged:
        status, error = STATUS_DIVERGED, None
    elif trainer.interrupted or trainer.global_step < plan.total_steps:
        status, error = STATUS_FAILED, f"interrupted at step {trainer.global_step} of {plan.total_steps}"
    else:
        status, error = STATUS_DONE, None
    result = _result(cfg, rid, run_dir, trainer, model, metrics, monitor, rank_hosts.hosts, plan.batch_tokens,
                     started, status, error)
    if downstream:  # the last scores of each task go into result.json (and so the W&B summary)
        result.extra.update(downstream.final)
    if trainer.is_global_zero:
        write_result(run_dir, result)
        _finish_wandb(wandb_logger, result, exit_code=0 if status == STATUS_DONE else 1)
    return result


def _result(cfg, rid, run_dir, trainer, model, metrics, monitor, hosts, batch_tokens, started, status,
            error=None) -> RunResult:
    counts = count_params(cfg.model)
    tokens = trainer.global_step * batch_tokens
    tokens_per_sec, run_mfu = metrics.run_throughput(trainer, model)
    from scaling.training.callbacks_common import hardware

    return RunResult(
        status=status, run_id=rid, run_dir=str(run_dir), params=counts.total,
        params_non_embedding=counts.non_embedding, tokens=tokens,
        flops=flops_per_token(cfg.model, cfg.train.seq_len) * tokens,
        final_val_loss=metrics.final_val_loss, best_val_loss=metrics.best_val_loss,
        val_bpb=metrics.final_val_bpb, final_train_loss=metrics.final_train_loss,
        tokens_per_sec=tokens_per_sec, mfu=run_mfu, wall_time_s=metrics.wall_time(),
        hardware=hardware(trainer.strategy.root_device, trainer.world_size), seed=cfg.run.seed,
        git_sha=git_sha(),
        steps=trainer.global_step, lr=cfg.optim.lr, batch_tokens=batch_tokens, seq_len=cfg.train.seq_len,
        model=cfg.model.name, diverged_at_step=monitor.diverged_at_step,
        last_good_loss=monitor.last_good_loss,
        parent=({"run_dir": str(cfg.run.branch_from), "tokens": cfg.run.branch_at_tokens}
                if cfg.run.branch_from is not None else None),
        error=error, num_nodes=trainer.num_nodes, world_size=trainer.world_size,
        hosts=hosts or [socket.gethostname()],  # empty when it failed before fitting started
        extra=dict(metrics.final_named),
    )


def _finish_wandb(logger, result: RunResult, exit_code: int) -> None:
    if logger is None:
        return
    import wandb

    summary = {k: v for k, v in result.to_json().items() if v is not None and not isinstance(v, dict)}
    logger.experiment.summary.update(summary)
    wandb.finish(exit_code=exit_code)
