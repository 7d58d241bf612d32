"""Throughput of the vectorised NEMD integrator of `interface_phonons` (run on demand).

    python benchmarks/bench_interface_md.py [--scale mini] [--blocks 4]

Integrates a few blocks of the configured set-up (one quartic run) with one thread and
writes ``benchmarks/results/interface_md-<scale>.json``: wall time per block, MD steps/s
and replica·atom·steps/s, plus the projected time of one seed of the configured `md` step.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from paperzoo.engine.config import resolve, study_block  # noqa: E402
from paperzoo.engine.io import read_yaml  # noqa: E402
from paperzoo.studies.interface_phonons import md, steps  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="mini", choices=["tiny", "mini", "paper"])
    ap.add_argument("--blocks", type=int, default=4)
    args = ap.parse_args()
    cfg = resolve({**read_yaml(REPO / "config/config.yaml"), "scale": args.scale}, REPO)
    kw = steps.md_from_config(study_block(cfg, "interface_phonons"))
    setup, t = kw["setup"], kw["temperatures"][-1]
    run = md.NemdRun("bench", kw["lam"], 1.5 * t, 0.5 * t)
    rng = np.random.default_rng(0)
    state = md._init_state(setup, run, rng)
    times = []
    for _ in range(args.blocks):
        noise = rng.standard_normal((setup.block_len, 2, setup.n_replicas))
        t0 = time.perf_counter()
        md.integrate_block(state, setup, run, noise, setup.block_len)
        times.append(time.perf_counter() - t0)
    per_block = float(np.median(times))
    blocks_per_seed = 2 * len(kw["temperatures"]) * (setup.n_blocks + setup.n_equil_blocks)
    out = {"scale": args.scale, "threads": 1, "n_replicas": setup.n_replicas, "n_atoms": setup.n,
           "block_len": setup.block_len, "s_per_block_median": per_block,
           "md_steps_per_s": setup.block_len / per_block,
           "replica_atom_steps_per_s": setup.block_len * setup.n_replicas * setup.n / per_block,
           "projected_s_per_seed": per_block * blocks_per_seed,
           "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    dest = REPO / "benchmarks" / "results" / f"interface_md-{args.scale}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
