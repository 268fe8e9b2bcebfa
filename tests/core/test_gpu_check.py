"""benchmarks/gpu_check.py, the GPU check of issue 19, kept runnable: a smoke run on the CPU with a
tiny config, in bfloat16, in a fresh interpreter that never imports Django."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = (
    "import runpy, sys; sys.argv = ['gpu_check', '--device', 'cpu', '--dtype', 'bfloat16', '--configs', 'tiny', "
    "'--steps', '1']; runpy.run_path('benchmarks/gpu_check.py', run_name='__main__'); "
    "assert not any(m.split('.')[0] == 'django' for m in sys.modules), 'the training core imported Django'"
)


@pytest.mark.slow
def test_the_gpu_check_runs_every_stage_and_prints_one_json_line_per_model():
    done = subprocess.run([sys.executable, "-c", RUN], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert (figures["config"], figures["device"], figures["dtype"]) == ("tiny", "cpu", "bfloat16")
    for key in ("sampling_tokens_per_s", "rm_pairs_per_s", "rloo_samples_per_s", "ppo_samples_per_s",
                "dpo_pairs_per_s", "peak_memory_mib"):  # fmt: skip
        assert figures[key] > 0, key
    assert figures["rloo_mfu"] is None  # no bf16 peak is known for a CPU
