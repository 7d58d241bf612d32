"""Run the real workflow in a throw-away copy of the repository."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def copy_workflow(dst: Path) -> Path:
    """Copy what the DAG reads (not results/, logs/ or .snakemake/) into ``dst``."""
    for name in ("Snakefile", "dvc.yaml", ".dvcignore"):
        shutil.copy2(REPO / name, dst / name)
    for name in ("workflow", "config", "src", "envs"):
        shutil.copytree(REPO / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # profiles/default links to workflow/profiles/default: where Snakemake looks for the implicit
    # workflow profile (relative to the working directory and the Snakefile)
    (dst / "profiles").mkdir()
    (dst / "profiles" / "default").symlink_to(os.readlink(REPO / "profiles" / "default"))
    return dst


def workflow_with_tiny_overlay(root: Path, extra_tiny: str) -> Path:
    """A fresh copy of the workflow in ``root`` whose tiny overlay ends with ``extra_tiny``
    (flat dotted keys, e.g. longer runs that a test can kill mid-way)."""
    root.mkdir()
    copy_workflow(root)
    with open(root / "config/scales/tiny.yaml", "a") as fh:
        fh.write(extra_tiny)
    return root


def env(**extra: str) -> dict:
    e = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
         "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", **extra}
    return e


def snakemake(cwd: Path, *args: str, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "snakemake"), *args], cwd=cwd, env=env(**extra_env),
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc
