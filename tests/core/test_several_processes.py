"""The RL step on two processes (torchrun, gloo on the CPU): gradients are averaged across ranks, so
both end on the same weights, and only rank 0 writes the policy."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("ddp_rloo_script.py")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_rloo_on_two_processes_keeps_the_ranks_in_step_and_saves_once(tiny_folder, tmp_path):
    torchrun, out = str(Path(sys.executable).parent / "torchrun"), tmp_path / "out"
    out.mkdir()
    command = [torchrun, "--standalone", "--nproc_per_node", "2", str(SCRIPT), str(tiny_folder), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1",
                          "PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = sorted((json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")),
                   key=lambda r: r["rank"])  # fmt: skip
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["processes"] == 2 and r["finite"] for r in ranks)
    assert ranks[0]["after"] != pytest.approx(ranks[0]["before"], abs=1e-6)  # it trained
    assert ranks[0]["after"] == pytest.approx(ranks[1]["after"], abs=1e-6)  # and both ranks agree
    assert [p.name for p in out.iterdir()] == ["policy"]  # rank 0 alone wrote it
