"""The SLURM profile against a real SLURM: a single-node cluster from Debian's packages
(``slurm_local``), brought up by the test when it runs as root (skipped, saying why, elsewhere).

* the tiny DAG of two studies runs through ``workflow/profiles/slurm`` and every job is
  COMPLETED in ``sacct``;
* preemption as SLURM does it: the running training job gets SIGTERM from SLURM (``scancel
  --signal=TERM``, what ``--signal=TERM@300`` sends before the time limit and what preemption
  sends), saves its partial checkpoint and exits non-zero; the profile's retry resumes it, and the
  result equals an uninterrupted run's.

The fake-SLURM test (``test_slurm_profile.py``) stays the fast check of the sbatch flags.
"""
import json
import subprocess
import time

import pytest

from . import slurm_local
from .helpers import BIN, env, snakemake, workflow_with_tiny_overlay

PROFILE = "workflow/profiles/slurm"
FAST_POLL = ("--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "5")
TARGET = "results/group_detr/tiny/runs/g1/seed0/metrics.json"
PARTIAL = "results/group_detr/tiny/checkpoints/g1/seed0/model.pt.partial"
LONGER = ("group_detr.detpre.steps: 1500\n"        # ~20 s of training: long enough to be signalled
          "group_detr.detpre.eval_every: 500\n")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        account = slurm_local.up(tmp_path_factory.mktemp("slurm"))
    except slurm_local.Unavailable as err:
        pytest.skip(str(err))
    yield {"PAPERZOO_SLURM_ACCOUNT": account, "PAPERZOO_SLURM_PARTITION": "debug"}
    slurm_local.down()


def sacct(since: str) -> list[dict]:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-S", since, "-o", "JobID,JobName,State,ExitCode,Comment"],
                         capture_output=True, text=True, check=True).stdout
    return [dict(zip(("id", "name", "state", "exit", "comment"), line.split("|"))) for line in out.splitlines()
            if line.strip()]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


@pytest.mark.slow
def test_tiny_dag_of_two_studies_completes_on_real_slurm(cluster, tmp_path):
    root = workflow_with_tiny_overlay(tmp_path / "wf", "")
    since = _now()
    snakemake(root, "--workflow-profile", PROFILE, "--config", "scale=tiny", *FAST_POLL,
              "valley_phonons", "interface_phonons", **cluster)
    jobs = sacct(since)
    assert jobs and all(j["state"] == "COMPLETED" for j in jobs), jobs
    for study in ("valley_phonons", "interface_phonons"):
        claims = json.loads((root / f"results/{study}/tiny/claims.json").read_text())
        assert claims["claims"]


@pytest.mark.slow
def test_a_training_job_signalled_by_slurm_checkpoints_and_its_retry_resumes(cluster, tmp_path):
    root = workflow_with_tiny_overlay(tmp_path / "slurm", LONGER)
    fresh = workflow_with_tiny_overlay(tmp_path / "fresh", LONGER)
    for r in (root, fresh):                        # stage E locally: only stage D goes through SLURM
        snakemake(r, "--config", "scale=tiny", "--cores", "1", "results/group_detr/tiny/mim/model.pt")
    since = _now()
    proc = subprocess.Popen([str(BIN / "snakemake"), "--workflow-profile", PROFILE, "--config", "scale=tiny",
                             *FAST_POLL, TARGET], cwd=root, env=env(PAPERZOO_CHECKPOINT_EVERY_S="1", **cluster),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while not (root / PARTIAL).exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    if not (root / PARTIAL).exists():
        proc.kill()
        raise AssertionError("the SLURM job wrote no partial checkpoint:\n" + proc.communicate()[0][-4000:])
    running = [j for j in sacct(since) if j["state"] == "RUNNING"]
    assert len(running) == 1, running
    subprocess.run(["scancel", "--signal=TERM", running[0]["id"]], check=True)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    states = [j["state"] for j in sacct(since)]
    assert states.count("COMPLETED") == 1 and len(states) == 2, states   # signalled attempt + the resumed retry
    log = (root / "logs/group_detr/tiny/detpre/g1_seed0.log").read_text()
    assert "resuming" in log and "different run" not in log, log[-2000:]
    assert not (root / PARTIAL).exists()
    snakemake(fresh, "--config", "scale=tiny", "--cores", "1", TARGET)
    drop = lambda p: {k: v for k, v in json.loads(p.read_text())["metrics"].items() if "_ms_" not in k}  # noqa: E731
    assert drop(root / TARGET) == drop(fresh / TARGET)
