"""UFO gate: the single-task models and the all-in-one model only, under config overrides.

    python benchmarks/bench_ufo_gate.py [--seed 0] [--arm single|allinone] [--set train.steps=300 ...] [--tag T]

Uses the mini ``ufo`` block (plus ``--set`` overrides, values read as YAML) and the DAG's
``results/data/synthid/mini`` (``snakemake --cores 1 results/data/synthid/mini/manifest.json``).
Writes each task's test Rank-1 / mAP, the train ms/step and the wall time to
``benchmarks/results/ufo_gate-<arm>[-<tag>].json``.

The gate is decided on the data-poor person task's single-task Rank-1 (neither hopeless nor
saturated) and the all-in-one model's (not saturated), never on a difference between arms.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from paperzoo.engine.config import load_block  # noqa: E402
from paperzoo.engine.io import write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arm", choices=("single", "allinone"), default="single")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    from paperzoo.studies.ufo import steps

    block = load_block(REPO, "ufo", "mini", args.set)
    data = REPO / "results" / "data" / block["dataset"] / "mini"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.arm == "single":
            m = steps.run_single(block, scale="mini", seed=args.seed, data_dir=data, checkpoint_dir=tmp,
                                 out=tmp / "m.json", progress=False)
        else:
            m = steps.run_multitask(block, scale="mini", arm="allinone", seed=args.seed, data_dir=data,
                                    checkpoint=tmp / "a.pt", out=tmp / "m.json", progress=False)
    keep = {k: v for k, v in m.items() if k.startswith(("R1_", "mAP_", "train_ms"))}
    out = REPO / "benchmarks" / "results" / f"ufo_gate-{args.arm}-seed{args.seed}{'-' + args.tag if args.tag else ''}.json"
    write_json(out, {"arm": args.arm, "seed": args.seed, "set": args.set, "metrics": keep,
                     "wall_s": time.perf_counter() - t0})
    print(keep, f"{time.perf_counter() - t0:.1f} s")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
