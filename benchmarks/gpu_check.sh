#!/usr/bin/env bash
# On a CUDA machine: train each seed model for one epoch and print img/s, epoch time, test accuracy,
# MFU and peak memory beside archscope's estimate (see benchmarks/README.md for the recipe on a bare,
# offline machine). --dry-run does the same on CPU for a few steps per model.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)"
if [ -z "${ARCHSCOPE_DATA:-}" ] && [ -d .data/fashion-mnist ]; then export ARCHSCOPE_DATA=.data/fashion-mnist; fi
case " $* " in *" --dry-run "*) ;; *) nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true ;; esac
PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py "$@"
