"""A training job killed through the DAG (SIGKILL of the whole job, as a scheduler or the OOM
killer does) keeps its partial checkpoint; after `snakemake --unlock` the rerun resumes from it
and ends with the metrics of an uninterrupted run (timings aside). The training family here is
group_detr's stage D (``engine.train``, shared by every learning study)."""
import json
import os
import signal
import subprocess
import time

import pytest

from .helpers import BIN, env, snakemake, workflow_with_tiny_overlay

TARGET = "results/group_detr/tiny/runs/g1/seed0/metrics.json"
PARTIAL = "results/group_detr/tiny/checkpoints/g1/seed0/model.pt.partial"
LONGER = ("group_detr.detpre.steps: 60\n"          # long enough to be killed mid-way
          "group_detr.detpre.eval_every: 30\n")


def prepare(root):
    return workflow_with_tiny_overlay(root, LONGER)


def _metrics(path):
    m = json.loads(path.read_text())["metrics"]
    return {k: v for k, v in m.items() if "_ms_" not in k}      # wall-clock timings differ by nature


@pytest.mark.slow
def test_killed_training_job_resumes_to_the_same_result(tmp_path):
    killed, fresh = prepare(tmp_path / "killed"), prepare(tmp_path / "fresh")
    snakemake(killed, "--config", "scale=tiny", "--cores", "1", "results/group_detr/tiny/mim/model.pt")
    proc = subprocess.Popen([str(BIN / "snakemake"), "--config", "scale=tiny", "--cores", "1", TARGET],
                            cwd=killed, env=env(PAPERZOO_CHECKPOINT_EVERY_S="0"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    partial = killed / PARTIAL
    deadline = time.monotonic() + 180
    while not partial.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert partial.exists(), "no partial checkpoint appeared"
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / TARGET).exists() and partial.exists()

    snakemake(killed, "--unlock")
    snakemake(killed, "--config", "scale=tiny", "--cores", "1", TARGET)
    log = (killed / "logs/group_detr/tiny/detpre/g1_seed0.log").read_text()
    assert "resuming" in log and "different run" not in log
    assert not partial.exists()

    snakemake(fresh, "--config", "scale=tiny", "--cores", "1", TARGET)
    assert _metrics(killed / TARGET) == _metrics(fresh / TARGET)
