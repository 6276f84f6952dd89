#!/usr/bin/env bash
# On a CUDA machine: train each seed model for one epoch and print img/s, epoch time,
# test accuracy and MFU. Needs Fashion-MNIST (ARCHSCOPE_DATA=DIR, the Debian package, or
# ~/.cache/archscope after `archscope train lenet --download --epochs 1`).
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py "$@"
