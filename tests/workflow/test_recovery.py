"""The README's crash recovery, verbatim, and the local profile that makes it work.

The README says: "After a crash or kill, run `snakemake --unlock` and the same command again".
A kill can land after a job has written its outputs but before Snakemake records it as
finished; Snakemake then marks those outputs incomplete, and only ``rerun-incomplete`` (set
in the local workflow profile, ``workflow/profiles/default``, found through
``profiles/default``) lets the same command go on. A test hook
(``engine.metrics.PAUSE_AFTER_METRICS``) holds the job in that window.
"""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from paperzoo.engine.metrics import PAUSE_AFTER_METRICS

from .helpers import BIN, REPO, env, snakemake, workflow_with_tiny_overlay

PRETRAIN = "results/lae/tiny/pretrain/backbone.pt"
TARGET = "results/lae/tiny/runs/classes_lae_adapter/seed0/metrics.json"
OUTPUTS = (TARGET, "results/lae/tiny/runs/classes_seq_adapter/seed0/metrics.json")   # the pair job writes both
COMMAND = ("--config", "scale=tiny", "--cores", "1", TARGET)   # the user's command, repeated verbatim


def test_plain_snakemake_loads_the_local_profile(tmp_path):
    root = workflow_with_tiny_overlay(tmp_path / "wf", "studies: [interface_phonons]\n")
    proc = snakemake(root, "-n", "--config", "scale=tiny")
    out = proc.stdout + proc.stderr
    assert "Using workflow specific profile profiles/default" in out
    # the settings in effect are the profile's (Snakemake prints the parsed arguments with --verbose
    # only; the profile file is the one that was loaded, and it carries both keys)
    cfg = (REPO / "profiles" / "default" / "config.yaml").read_text()
    assert "\nkeep-going: true" in cfg and "\nrerun-incomplete: true" in cfg
    assert (REPO / "profiles" / "default").resolve() == (REPO / "workflow" / "profiles" / "default").resolve()


def _metrics(path):
    m = json.loads(path.read_text())["metrics"]
    return {k: v for k, v in m.items() if "_ms_" not in k and not k.endswith("_per_s")}


@pytest.mark.slow
def test_readme_recovery_after_a_kill_between_outputs_and_exit(tmp_path):
    overlay = "studies: [lae]\n"
    killed = workflow_with_tiny_overlay(tmp_path / "killed", overlay)
    snakemake(killed, "--config", "scale=tiny", "--cores", "1", PRETRAIN)
    fresh = shutil.copytree(killed, tmp_path / "fresh", symlinks=True)    # same pretraining, mtimes kept
    proc = subprocess.Popen([str(BIN / "snakemake"), *COMMAND], cwd=killed,
                            env=env(**{PAUSE_AFTER_METRICS: "120"}), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not any((killed / o).exists() for o in OUTPUTS) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None and any((killed / o).exists() for o in OUTPUTS), \
        "the job did not reach its pause after writing an output"
    os.killpg(proc.pid, signal.SIGKILL)   # Snakemake and its job, as a scheduler or the OOM killer would
    proc.wait()

    # the window is real: without the profile's rerun-incomplete the same command refuses to go on
    snakemake(killed, "--unlock", "--workflow-profile", "none")
    bare = snakemake(killed, "-n", *COMMAND, "--workflow-profile", "none", check=False)
    assert bare.returncode != 0 and "incomplete" in (bare.stdout + bare.stderr).lower()

    # what the README says, verbatim
    snakemake(killed, "--unlock")
    snakemake(killed, *COMMAND)

    snakemake(fresh, *COMMAND)
    assert _metrics(killed / TARGET) == _metrics(fresh / TARGET)
