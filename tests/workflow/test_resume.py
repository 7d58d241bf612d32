"""A killed MD job keeps its partial checkpoint; the rerun resumes from it and gives the
same metrics as an uninterrupted run (deterministic per seed)."""
import json
import os
import signal
import subprocess
import time

import pytest

from .helpers import BIN, env, snakemake, workflow_with_tiny_overlay

TARGET = "results/interface_phonons/tiny/runs/md/seed0/metrics.json"
SLOW_MD = ("interface_phonons.md.checkpoint_every_s: 0\n"   # checkpoint after every block
           "interface_phonons.md.n_blocks: 40\n")            # long enough to be killed mid-way


def prepare(root):
    return workflow_with_tiny_overlay(root, SLOW_MD)


@pytest.mark.slow
def test_killed_md_job_resumes_to_the_same_result(tmp_path):
    killed, fresh = prepare(tmp_path / "killed"), prepare(tmp_path / "fresh")
    proc = subprocess.Popen([str(BIN / "snakemake"), "--config", "scale=tiny", "--cores", "1", TARGET],
                            cwd=killed, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    partial = killed / (TARGET + ".partial")
    deadline = time.monotonic() + 60
    while not partial.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert partial.exists(), "no partial checkpoint appeared"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job, as a scheduler or OOM killer would
    proc.wait()
    assert not (killed / TARGET).exists() and partial.exists()

    snakemake(killed, "--unlock")  # a SIGKILL leaves Snakemake's lock behind (README: after a kill)
    snakemake(killed, "--config", "scale=tiny", "--cores", "1", TARGET)
    log = (killed / "logs/interface_phonons/tiny/md/seed0.log").read_text()
    assert "resuming" in log
    assert not partial.exists()

    snakemake(fresh, "--config", "scale=tiny", "--cores", "1", TARGET)
    resumed = json.loads((killed / TARGET).read_text())["metrics"]
    uninterrupted = json.loads((fresh / TARGET).read_text())["metrics"]
    assert resumed == uninterrupted
