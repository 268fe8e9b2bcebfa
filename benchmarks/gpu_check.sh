#!/usr/bin/env bash
# The GPU check of issue 19: every training stage on one accelerator in bf16, on random-weight
# SmolLM2-135M and SmolLM2-1.7B-sized models (benchmarks/configs/), one JSON line each.
# Needs only torch, transformers, accelerate and peft; about 8 minutes at most on one H100/H200.
#   bash benchmarks/gpu_check.sh [--configs smollm2-135m] [--steps 3]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec timeout 480 "$PYTHON" benchmarks/gpu_check.py "$@"
