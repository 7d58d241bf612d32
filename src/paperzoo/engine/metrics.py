"""Per-run metrics files and their aggregation over seeds.

One run writes ``results/<slug>/<scale>/runs/<arm>/seed<k>/metrics.json``::

    {"study": ..., "scale": ..., "arm": ..., "seed": k,
     "metrics": {"<name>": float, ...}, "meta": {...}}

``meta`` records what a reader needs to trust the numbers: deviations from the paper's
recipe at this scale, wall time, thread count, package versions.

Aggregation (:func:`aggregate`) writes ``results/<slug>/<scale>/metrics.json``::

    {"study": ..., "scale": ..., "arms": {"<arm>": {"<name>": {"mean", "std", "n", "by_seed"}}}}

``std`` is the sample standard deviation (ddof=1) over seeds, 0 for a single run;
``by_seed`` maps each seed (a string key) to its run's value, so that claims over arms that
share seeds can be judged on per-seed differences (``engine.claims``, paired test).
Metric names flow unchanged from a study's loss/metric dict to here, to the claims and
to the report.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from .io import read_json, write_json


# Test hook (tests/workflow/test_recovery.py): seconds a run sleeps after writing its metrics, so a
# kill can land after its outputs exist but before Snakemake records the job as finished.
PAUSE_AFTER_METRICS = "PAPERZOO_TEST_PAUSE_AFTER_METRICS_S"


def write_run_metrics(
    path: str | os.PathLike,
    *,
    study: str,
    scale: str,
    arm: str,
    seed: int,
    metrics: Mapping[str, float],
    meta: Mapping | None = None,
) -> None:
    """Atomically write one run's metrics; every value must be a finite number."""
    clean = {}
    for name, value in metrics.items():
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{path}: metric {name!r} of arm {arm!r} is {value}, expected a finite number")
        clean[name] = value
    write_json(path, {"study": study, "scale": scale, "arm": arm, "seed": int(seed),
                      "metrics": clean, "meta": dict(meta or {})})
    pause = os.environ.get(PAUSE_AFTER_METRICS)
    if pause:   # test hook: hold the job between its outputs and its exit, where a kill leaves them incomplete
        time.sleep(float(pause))


def cpu_info() -> dict:
    """The machine a run's numbers came from: CPU model and, when torch is loaded, the SIMD
    level its CPU kernels dispatch to. Float-level differences between CPUs grow through
    training, so learned metrics are bit-reproducible only on the same CPU model and
    capability (README, "Reproducibility")."""
    import sys

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu_model": model, "cpu_count": os.cpu_count(), "platform": platform.platform()}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return info


_PARAMS_DIGEST: str | None = None


def set_params_digest(block: Mapping) -> str:
    """Record the SHA-256 of the config block this process runs with (canonical JSON, sorted
    keys); :func:`run_meta` adds it as ``params_sha256``. ``engine.cli.parse_step`` calls it."""
    import hashlib
    import json

    global _PARAMS_DIGEST
    _PARAMS_DIGEST = hashlib.sha256(json.dumps(block, sort_keys=True, default=str).encode()).hexdigest()
    return _PARAMS_DIGEST


def params_digest() -> str | None:
    """The digest :func:`set_params_digest` recorded in this process (None if none)."""
    return _PARAMS_DIGEST


_DATA_DIGEST: str | None = None


def set_data_digest(data_dir: str | os.PathLike | None) -> str | None:
    """Record the SHA-256 of ``<data_dir>/manifest.json`` (the dataset's list of files with
    their hashes, written by the data rule) for :func:`run_meta` (``data_manifest_sha256``);
    None when there is no manifest there. ``engine.cli.parse_step`` calls it with ``--data-dir``."""
    import hashlib

    global _DATA_DIGEST
    man = Path(data_dir) / "manifest.json" if data_dir is not None else None
    _DATA_DIGEST = hashlib.sha256(man.read_bytes()).hexdigest() if man is not None and man.is_file() else None
    return _DATA_DIGEST


def git_state(root: str | os.PathLike | None = None) -> dict:
    """``git_commit`` (HEAD) and ``git_dirty`` (tracked files outside ``results/`` modified) of
    the checkout the code runs from; ``"unknown"`` / None outside a git checkout or without git."""
    import subprocess

    root = Path(root) if root is not None else Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        # results/ holds the pipeline's own committed aggregates, rewritten while a DAG runs (a
        # study that finishes early would flag every later run of another study): not counted
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)results"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": None}
    return {"git_commit": head, "git_dirty": dirty}


def process_times() -> dict:
    """``process_s`` (wall seconds since this process started, imports included) and
    ``process_cpu_s`` (its CPU seconds, all threads): a 1-thread job whose CPU share
    ``process_cpu_s / process_s`` is well below 1 waited for a core (another process competed),
    so its timings overstate the machine's cost. Empty where the start time is not readable."""
    try:
        import psutil                                    # a Snakemake dependency

        started = psutil.Process().create_time()
    except Exception:                                    # noqa: BLE001  (optional provenance)
        return {}
    return {"process_s": round(time.time() - started, 3), "process_cpu_s": round(time.process_time(), 3)}


def run_meta(t0: float, threads: int, packages: Iterable[str] = ("numpy", "scipy"), **extra) -> dict:
    """Provenance for a run's ``meta``: wall time since ``t0`` (``time.perf_counter``),
    threads, Python, the CPU (:func:`cpu_info`), the versions of ``packages``, the git commit
    and whether tracked files were modified (:func:`git_state`), the SHA-256 of the config block
    (:func:`set_params_digest`, when the step set it) and of the data manifest
    (:func:`set_data_digest`, when the step reads a dataset), plus study-specific ``extra`` keys."""
    from importlib.metadata import version

    prov = {**git_state(), **({"params_sha256": _PARAMS_DIGEST} if _PARAMS_DIGEST else {}),
            **({"data_manifest_sha256": _DATA_DIGEST} if _DATA_DIGEST else {})}
    return {"wall_s": round(time.perf_counter() - t0, 3), "threads": threads, **process_times(),
            "python": platform.python_version(), **cpu_info(), **{p: version(p) for p in packages}, **prov,
            **extra}


def seed_summary(pairs: Iterable[tuple[int, float]]) -> dict:
    """``{"mean", "std", "n", "by_seed"}`` of one metric from its (seed, value) pairs: sample std
    (ddof = 1; 0 for a single run), ``by_seed`` keyed by the seed as a string, in seed order."""
    pairs = sorted(pairs)
    v = np.asarray([x for _, x in pairs])
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size),
            "by_seed": {str(seed): x for seed, x in pairs}}


def seed_ids(metrics: Mapping) -> tuple[list[str], int]:
    """(the seed ids of the arms run with the most seeds, that count), ids in numeric order."""
    n_max, ids = 0, set()
    for arm in metrics["arms"].values():
        for m in arm.values():
            bs = m.get("by_seed") or {}
            if len(bs) > n_max:
                n_max, ids = len(bs), set(bs)
            elif len(bs) == n_max:
                ids |= set(bs)
    return sorted(ids, key=int), n_max


def _full_arm(arm: Mapping, n_max: int) -> bool:
    return max((len(m.get("by_seed") or {}) for m in arm.values()), default=0) == n_max


def restrict(metrics: Mapping, seeds: set[str], n_max: int) -> dict:
    """``metrics`` with every metric of every full arm (run on ``n_max`` seeds) restricted to
    ``seeds``: mean, sample std, n and by_seed recomputed by ``engine.metrics.seed_summary``
    (as ``aggregate`` made them). Arms with fewer seeds are returned unchanged."""
    arms = {}
    for name, arm in metrics["arms"].items():
        if not _full_arm(arm, n_max):
            arms[name] = arm
            continue
        out = {}
        for key, m in arm.items():
            pairs = [(int(s), float(v)) for s, v in (m.get("by_seed") or {}).items() if s in seeds]
            out[key] = {**m, **seed_summary(pairs)} if pairs else m
        arms[name] = out
    return {**metrics, "arms": arms}


def aggregate(run_files: Iterable[str | os.PathLike]) -> dict:
    """Mean, sample std and n per arm and metric over the given run files, and their
    ``provenance``: the number of runs, the sum of their wall seconds, the git commits they ran
    from and whether any ran from a modified tree."""
    values: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    seeds: dict[str, set[int]] = defaultdict(set)
    study = scale = None
    n_runs, wall, commits, dirty = 0, 0.0, set(), False
    for f in run_files:
        run = read_json(f)
        meta = run.get("meta") or {}
        n_runs += 1
        wall += float(meta.get("wall_s") or 0.0)
        commits.add(str(meta.get("git_commit", "unknown")))
        dirty = dirty or bool(meta.get("git_dirty"))
        for key in ("study", "scale", "arm", "seed", "metrics"):
            if key not in run:
                raise ValueError(f"{f}: run metrics lack the key {key!r}")
        if study is not None and (run["study"], run["scale"]) != (study, scale):
            raise ValueError(f"{f}: study/scale {run['study']}/{run['scale']} differ from {study}/{scale}")
        study, scale = run["study"], run["scale"]
        if run["seed"] in seeds[run["arm"]]:
            raise ValueError(f"{f}: seed {run['seed']} of arm {run['arm']!r} appears twice")
        seeds[run["arm"]].add(run["seed"])
        for name, v in run["metrics"].items():
            values[run["arm"]][name].append((int(run["seed"]), float(v)))
    if study is None:
        raise ValueError("aggregate: no run files given")
    arms = {}
    for arm in sorted(values):
        arms[arm] = {}
        for name in sorted(values[arm]):
            arms[arm][name] = seed_summary(values[arm][name])
    provenance = {"runs": n_runs, "run_wall_s": round(wall, 1), "git_commits": sorted(commits), "git_dirty": dirty}
    return {"study": study, "scale": scale, "provenance": provenance, "arms": arms}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Aggregate per-seed run metrics into mean/std/n.")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args(argv)
    write_json(args.out, aggregate(args.runs))


if __name__ == "__main__":
    main()
