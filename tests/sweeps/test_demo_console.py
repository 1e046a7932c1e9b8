"""`scaling demo`'s console: W&B's own lines (run summaries, sync hints) stay out of it; one line says where
the offline runs are and how to upload them. The demo's work is replaced by one offline W&B run, as the fit
logs in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, wandb
from sweeps import demo

def fake_run_demo(out, **_):
    run = wandb.init(mode="offline", dir=out, project="scaling-demo")
    run.log({"fit/E": 1.0})
    run.summary["fit/a"] = 0.5
    run.finish()

demo.run_demo = fake_run_demo
parser = demo.argparse.ArgumentParser()
demo.add_arguments(parser)  # every option at its default, as `scaling demo` parses them
args = parser.parse_args(["--out", sys.argv[1], "--quick", "--workers", "1", "--wandb", "offline"])
sys.exit(demo.run(args))
"""


def test_the_demo_prints_one_wandb_line_and_none_of_wandbs_own(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SILENT", "WANDB_QUIET")}
    env.update(PYTHONPATH=str(ROOT), WANDB_DIR=str(tmp_path), WANDB_CACHE_DIR=str(tmp_path / "cache"),
               WANDB_CONFIG_DIR=str(tmp_path / "config"))
    out = tmp_path / "demo"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = (proc.stdout + proc.stderr).splitlines()
    assert not [ln for ln in lines if ln.startswith("wandb:")]
    assert lines == [f"W&B: offline runs under {out}/sweeps/*/runs/*/wandb and {out}/fit/wandb; to upload: "
                     f"wandb sync {out}/sweeps/*/runs/*/wandb/offline-run-* {out}/fit/wandb/offline-run-*"]
