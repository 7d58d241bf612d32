"""A training job killed through the DAG (SIGKILL of the whole job, as a scheduler or the OOM
killer does) keeps its partial state; after `snakemake --unlock` the rerun resumes from it and
ends with the metrics of an uninterrupted run (timings aside), and nothing else in results/ is
touched by the kill. One case per resume mechanism of the training rules:

* ``engine.train`` — step-level ``<checkpoint>.partial`` (every study's single training runs;
  here group_detr's stage D);
* apis' active loop — round-level ``<checkpoint>.partial`` (weights, points, metrics after
  the last finished round; each round fine-tunes with ``engine.train`` without a partial);
* lae's task sequence — per-task state files of the forked Seq-PET / LAE pair
  (``state.pt.d/{seq,fork,lae}.pt``);
* drkd's distillation — ``engine.train`` on student + relation kit with a frozen teacher and
  the released random relation filter drawn in the loss at every step (the loss's own
  randomness must resume too);
* kd_detr's student — ``engine.train`` of the KD-DETR arm from the shared init, its loss reading
  the seed's stored teacher outputs (``teacher_targets/seed0.pt``) by step index, so the resumed
  steps must read the same entries;
* cfnet's detector — ``engine.train`` of a cascade-fusion RetinaNet-lite (``cfnet_m3``), AdamW
  with warmup and a cosine schedule, flipped batches drawn per step;
* ufo's supernet — ``engine.train`` with a sub-network sampled from the step index and one
  augmented batch per task at every step (``ufo_largest``);
* cpgnet's training — ``engine.train`` of the TCL arm (``fuse2_tcl``: an augmented and a raw
  view of the same points per step), then BN recalibration and evaluation; its target is the
  training rule's ``train.json`` (the latency rule after it only adds timings).

The phonon MD step's resume (``engine.checkpoint`` directly) is tested in ``test_resume.py``.
"""
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

import pytest

from .helpers import BIN, env, snakemake, workflow_with_tiny_overlay


@dataclass(frozen=True)
class Family:
    prereq: tuple         # built first (data, pretraining, teacher): not part of what is killed
    target: str           # the training rule's metrics file
    partial: str          # appears once the job has state to resume from
    log: str
    resumed: str          # what the log says on resume
    overlay: str          # longer runs, so the kill lands mid-way
    study: str            # the only study enabled in the copy (a smaller DAG to plan at each call)


FAMILIES = {
    "engine_train": Family(
        study="group_detr",
        prereq=("results/group_detr/tiny/mim/model.pt",),
        target="results/group_detr/tiny/runs/g1/seed0/metrics.json",
        partial="results/group_detr/tiny/checkpoints/g1/seed0/model.pt.partial",
        log="logs/group_detr/tiny/detpre/g1_seed0.log",
        resumed="resuming",
        overlay="group_detr.detpre.steps: 60\ngroup_detr.detpre.eval_every: 30\n"),
    "apis_rounds": Family(
        study="apis",
        prereq=("results/apis/tiny/checkpoints/p0/seed0/model.pt",),
        target="results/apis/tiny/runs/entropy/seed0/metrics.json",
        partial="results/apis/tiny/checkpoints/entropy/seed0/model.pt.partial",
        log="logs/apis/tiny/active/entropy_seed0.log",
        resumed="resuming",
        overlay="apis.rounds.n: 5\napis.rounds.steps: 30\n"),
    "lae_tasks": Family(
        study="lae",
        prereq=("results/lae/tiny/pretrain/backbone.pt",),
        target="results/lae/tiny/runs/classes_lae_adapter/seed0/metrics.json",
        partial="results/lae/tiny/runs/classes_lae_adapter/seed0/state.pt.d/lae.pt",
        log="logs/lae/tiny/train/classes_seq_lae_adapter_seed0.log",
        resumed="lae: lae resuming from results/lae/tiny/runs/classes_lae_adapter/seed0/state.pt.d/lae.pt",
        overlay=("lae.bench.classes.n_tasks: 4\nlae.bench.classes.classes_per_task: 2\n"
                 "lae.train.epochs: 200\n")),
    "drkd_distill": Family(
        study="drkd",
        prereq=("results/drkd/tiny/teacher/model.pt", "results/drkd/tiny/teacher/metrics.json",
                "results/drkd/tiny/init/seed0/model.pt"),
        target="results/drkd/tiny/runs/drkd/seed0/metrics.json",
        partial="results/drkd/tiny/checkpoints/drkd/seed0/model.pt.partial",
        log="logs/drkd/tiny/student/drkd_seed0.log",
        resumed="resuming",
        overlay="drkd.student.steps: 60\n"),
    "kd_detr_student": Family(
        study="kd_detr",
        prereq=("results/kd_detr/tiny/teacher/model.pt", "results/kd_detr/tiny/teacher/metrics.json",
                "results/kd_detr/tiny/init/seed0/model.pt",
                # the seed's stored teacher outputs: temp, kept while the student has not finished
                "results/kd_detr/tiny/teacher_targets/seed0.pt"),
        target="results/kd_detr/tiny/runs/kd_detr/seed0/metrics.json",
        partial="results/kd_detr/tiny/checkpoints/kd_detr/seed0/model.pt.partial",
        log="logs/kd_detr/tiny/student/kd_detr_seed0.log",
        resumed="resuming",
        overlay="kd_detr.student.steps: 40\n"),
    "cfnet_train": Family(
        study="cfnet",
        prereq=("results/data/shapes_dense/tiny/manifest.json",),
        target="results/cfnet/tiny/runs/cfnet_m3/seed0/metrics.json",
        partial="results/cfnet/tiny/checkpoints/cfnet_m3/seed0/model.pt.partial",
        log="logs/cfnet/tiny/train/cfnet_m3_seed0.log",
        resumed="resuming",
        overlay="cfnet.train.steps: 40\n"),
    "ufo_supernet": Family(
        study="ufo",
        prereq=("results/data/synthid/tiny/manifest.json",),
        target="results/ufo/tiny/runs/ufo_largest/seed0/metrics.json",
        partial="results/ufo/tiny/checkpoints/ufo_largest/seed0/model.pt.partial",
        log="logs/ufo/tiny/multitask/ufo_largest_seed0.log",
        resumed="resuming",
        overlay="ufo.train.steps: 60\n"),
    "cpgnet_train": Family(
        study="cpgnet",
        prereq=("results/data/synthscan/tiny/manifest.json",),
        target="results/cpgnet/tiny/runs/fuse2_tcl/seed0/train.json",
        partial="results/cpgnet/tiny/checkpoints/fuse2_tcl/seed0/model.pt.partial",
        log="logs/cpgnet/tiny/train/fuse2_tcl_seed0.log",
        resumed="resuming",
        overlay="cpgnet.train.steps: 60\n"),
}


def _is_timing(key: str) -> bool:
    """Wall-clock measures (they differ between any two runs by nature): ms per step or image,
    images per second, apis' selection seconds per round."""
    return "_ms_" in key or key.endswith("_per_s") or key.startswith("sel_s_")


def _metrics(path):
    m = json.loads(path.read_text())["metrics"]
    return {k: v for k, v in m.items() if not _is_timing(k)}


def _tree(root):
    """Every file under results/ with its size and mtime (what the kill must not touch)."""
    out = {}
    for p in sorted((root / "results").rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_killed_training_job_resumes_to_the_same_result(name, tmp_path):
    f = FAMILIES[name]
    killed = workflow_with_tiny_overlay(tmp_path / "killed", f"{f.overlay}studies: [{f.study}]\n")
    snakemake(killed, "--config", "scale=tiny", "--cores", "1", *f.prereq)
    fresh = shutil.copytree(killed, tmp_path / "fresh", symlinks=True)    # same prerequisites, mtimes kept
    before = _tree(killed)
    proc = subprocess.Popen([str(BIN / "snakemake"), "--config", "scale=tiny", "--cores", "1", f.target],
                            cwd=killed, env=env(PAPERZOO_CHECKPOINT_EVERY_S="0"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    partial = killed / f.partial
    deadline = time.monotonic() + 240
    while not partial.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert partial.exists(), f"{f.partial}: no partial state appeared (job exit code {proc.poll()})"
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / f.target).exists() and partial.exists()
    after = _tree(killed)
    assert {k: v for k, v in after.items() if k in before} == before, "the kill touched files it did not own"

    snakemake(killed, "--unlock")
    snakemake(killed, "--config", "scale=tiny", "--cores", "1", f.target)
    log = (killed / f.log).read_text()
    assert f.resumed in log and "different run" not in log and "unreadable" not in log
    assert not partial.exists()

    snakemake(fresh, "--config", "scale=tiny", "--cores", "1", f.target)
    assert _metrics(killed / f.target) == _metrics(fresh / f.target)
