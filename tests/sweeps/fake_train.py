"""A stand-in for `scaling train` with the same contract, fast and fully scripted by its config.

Steps = train.tokens / FAKE_TOKENS_PER_STEP (default 1e5), each sleeping FAKE_STEP_S seconds (default
0.05) and writing metrics and checkpoints/last.ckpt; `run.resume=auto` continues from last.ckpt.
optim.lr >= 1 diverges at step 1 (exit 3), run.seed == 13 crashes (exit 1, result.json failed).
Every start and finish is appended to $FAKE_TRAIN_LOG as "start|finish <run dir name> <step> <pid>".
$FAKE_WANDB_HEADER set: each attempt starts an offline W&B folder whose run file holds only its header
(as W&B's file is before its service writes a record); $FAKE_SELF_KILL set: the trainer then SIGKILLs
itself.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import yaml


def main() -> int:
    args = sys.argv[1:]
    cfg = yaml.safe_load(Path(args[args.index("--config") + 1]).read_text())
    over = dict(a.split("=", 1) for a in args if "=" in a and not a.startswith("--"))
    run_dir = Path(over["run.dir"])
    result_path = run_dir / "result.json"
    if result_path.exists() and json.loads(result_path.read_text())["status"] == "done":
        return 0
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    step = json.loads(ckpt.read_text())["step"] if ckpt.exists() and over.get("run.resume") == "auto" else 0
    log = os.environ.get("FAKE_TRAIN_LOG")

    def note(event: str) -> None:
        if log:
            with open(log, "a") as f:
                f.write(f"{event} {run_dir.name} {step} {os.getpid()}\n")

    note("start")
    if os.environ.get("FAKE_WANDB_HEADER"):
        folder = run_dir / "wandb" / f"offline-run-{time.strftime('%Y%m%d_%H%M%S')}-{run_dir.name}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"run-{run_dir.name}.wandb").write_bytes(b":W&B\xe1\xbe\x00")
        if os.environ.get("FAKE_SELF_KILL"):
            os.kill(os.getpid(), signal.SIGKILL)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "args.json").write_text(json.dumps(args))
    (run_dir / "gpu.txt").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "none"))
    steps = int(float(cfg["train"]["tokens"]) / float(os.environ.get("FAKE_TOKENS_PER_STEP", 1e5)))
    lr, seed = float(cfg["optim"]["lr"]), int(cfg["run"]["seed"])
    loss = None
    while step < steps:
        time.sleep(float(os.environ.get("FAKE_STEP_S", 0.05)))
        step += 1
        loss = 10.0 / (1 + step * lr * 1000) + seed * 1e-3
        if lr >= 1 and step >= 1:
            result = {
                "status": "diverged",
                "run_id": run_dir.name,
                "final_val_loss": None,
                "error": "loss is nan",
            }
            result_path.write_text(json.dumps(result))
            note("diverged")
            return 3
        if seed == 13:
            result_path.write_text(json.dumps({"status": "failed", "run_id": run_dir.name, "error": "boom"}))
            print("RuntimeError: boom", file=sys.stderr)
            return 1
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "train/tokens": step * 1e5, "train/loss": loss}) + "\n")
        tmp = ckpt.with_suffix(".tmp")
        tmp.write_text(json.dumps({"step": step}))
        os.replace(tmp, ckpt)
    result = {"status": "done", "run_id": run_dir.name, "tokens": steps * 1e5, "final_val_loss": loss,
              "wall_time_s": 0.1, "params": 1, "flops": 1}
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, result_path)
    note("finish")
    return 0


if __name__ == "__main__":
    sys.exit(main())
