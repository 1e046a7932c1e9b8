#!/usr/bin/env bash
# The GPU half of the trainer's checks in one go, for a machine with one CUDA GPU (H100/H200).
#
#   scripts/gpu_check.sh fetch   # on a machine with pip access: wheels the GPU image lacks -> .whl/
#   scripts/gpu_check.sh run     # on the GPU machine: GPU tests, then `scaling bench` (gpt2-small,
#                                # seq 1024, batch 32, bf16, compiled; ours vs a plain loop)
#
# `run` uses the GPU machine's own torch and lightning (no pip install of the project: its pinned
# torch would replace the CUDA build) and puts the repo on PYTHONPATH. Wheels in .whl/ (omegaconf,
# zstandard: imported by the trainer, absent from a plain PyTorch image) go to /tmp/site first.
# Logs land in $OUT (or ./gpu_check_out). Budget: about 6 minutes on an H100/H200.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(omegaconf==2.4.0 zstandard==0.25.0)
PY=${PYTHON:-python3}

case "${1:-}" in
fetch)
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${WHEELS[@]}" && ls .whl
    ;;
run)
    out=${OUT:-gpu_check_out}
    mkdir -p "$out"
    if compgen -G ".whl/*.whl" >/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
            || { echo "error: installing .whl/ failed" >&2; exit 1; }
        export PYTHONPATH=/tmp/site:$PWD
    else
        export PYTHONPATH=$PWD
    fi
    export PYTHONUNBUFFERED=1
    status=0
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
      "$PY" -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, torch.cuda.get_device_name())"
    } 2>&1 | tee "$out/device.txt"
    # The GPU tests (sharded checkpoints too; deepspeed's skip unless it is installed), and the CPU checks
    # of compile/bf16/fused against this machine's torch.
    timeout 420 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_train_gpu.py tests/test_train_sharded.py \
        tests/test_train_gpu_defaults_on_cpu.py \
        2>&1 | tee "$out/pytest.txt" || status=1
    timeout 300 "$PY" -m scaling bench --rounds 2 --steps 50 --warmup 10 2>&1 | tee "$out/bench.txt" || status=1
    exit $status
    ;;
*)
    echo "usage: scripts/gpu_check.sh fetch|run" >&2
    exit 2
    ;;
esac
