"""APIS gate: the random baseline and the full-mask reference only, under config overrides.

    python benchmarks/bench_apis_gate.py [--seeds 0 1] [--set n_train=400 ...] [--tag T]

Uses the mini ``apis`` block (plus ``--set`` overrides, values read as YAML) and the DAG's
``results/data/<dataset>/mini`` data (``snakemake --cores 1 results/data/shapes_inst/mini/manifest.json``).
Runs P0, the ``random`` rounds and ``fullmask`` per seed and writes the random curve
(mIoU at 1..R+1 points), the full-mask mIoU, their gap and the wall times to
``benchmarks/results/apis_gate[-<tag>].json``.

The gate decides the data difficulty from these two arms only (the random baseline neither
saturated nor hopeless, a clear gap to the full-mask head), never from a model-based strategy.
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
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    from paperzoo.studies.apis import steps

    block = load_block(REPO, "apis", "mini", args.set)
    data = REPO / "results" / "data" / block["dataset"] / "mini"
    runs = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            t0 = time.perf_counter()
            steps.run_p0(block, scale="mini", seed=seed, data_dir=data, checkpoint=tmp / "p0.pt",
                         out=tmp / "p0.json", progress=False)
            t1 = time.perf_counter()
            rnd = steps.run_active(block, scale="mini", strategy="random", seed=seed, data_dir=data,
                                   p0=tmp / "p0.pt", checkpoint=tmp / "r.pt", out=tmp / "r.json", progress=False)
            t2 = time.perf_counter()
            fm = steps.run_fullmask(block, scale="mini", seed=seed, data_dir=data, checkpoint=tmp / "f.pt",
                                    out=tmp / "f.json", progress=False)
            t3 = time.perf_counter()
        curve = [rnd[f"miou_p{n}"] for n in range(1, block["rounds"]["n"] + 2)]
        runs.append({"seed": seed, "random_miou": curve, "fullmask_miou": fm["miou"],
                     "gap_p1": fm["miou"] - curve[0], "ratio_last": curve[-1] / fm["miou"],
                     "wall_s": {"p0": t1 - t0, "random": t2 - t1, "fullmask": t3 - t2}})
        print(runs[-1], flush=True)
    out = REPO / "benchmarks" / "results" / f"apis_gate{'-' + args.tag if args.tag else ''}.json"
    write_json(out, {"set": args.set, "data_dir": str(data), "runs": runs})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
