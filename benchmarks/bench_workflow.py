"""Workflow-level timings, run on demand (not part of the test suite).

    python benchmarks/bench_workflow.py [--scale tiny] [--repeat 3]

Measures, in a throw-away copy of the repository: `snakemake -n` at every scale (DAG
building), the full DAG at ``--scale`` with ``--cores 2`` (wall time, peak RSS of the
largest child process), and writes ``benchmarks/results/workflow-<scale>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from workflow.helpers import copy_workflow, env  # noqa: E402


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env(), check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="tiny", choices=["tiny", "mini"])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    snake = str(Path(sys.executable).parent / "snakemake")
    out: dict = {"scale": args.scale, "host": platform.node(), "cpus": os.cpu_count(),
                 "python": platform.python_version(), "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_workflow(Path(tmp))
        out["dry_run_s"] = {s: min(timed([snake, "-n", "--config", f"scale={s}"], root)
                                   for _ in range(args.repeat)) for s in ("tiny", "mini", "paper")}
        out["dag_wall_s"] = timed([snake, "--config", f"scale={args.scale}", "--cores", "2"], root)
        out["peak_child_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        shutil.rmtree(root / ".snakemake", ignore_errors=True)
    dest = REPO / "benchmarks" / "results" / f"workflow-{args.scale}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
