"""Group DETR gate: stage D's AP-vs-step curve of one arm (seed 0) under config overrides.

    python benchmarks/bench_group_detr_gate.py --arm g1 [--set detpre.lr=5e-4 ...] [--tag T]

Uses the mini ``group_detr`` block (plus ``--set`` overrides, values read as YAML), the DAG's
``results/data/<pretrain_dataset>/mini`` data and, for ``encoder: mim`` arms, the DAG's stage-E
checkpoint ``results/group_detr/mini/mim/model.pt`` (run ``snakemake
results/group_detr/mini/mim/model.pt`` first). Writes the curve, final metrics, ms/step and
wall time to ``benchmarks/results/group_detr_gate-<arm>[-<tag>].json``.

The gate is decided on the one-group arm only (its AP after stage D: neither hopeless nor
saturated), never on the difference between group counts.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from paperzoo.engine.config import load_block  # noqa: E402
from paperzoo.engine.io import read_json, write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arm", default="g1")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--encoder", type=Path, default=REPO / "results" / "group_detr" / "mini" / "mim" / "model.pt")
    ap.add_argument("--data-dir", type=Path, help="another generated pretraining set (default: the DAG's)")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    from paperzoo.studies.group_detr import steps

    block = load_block(REPO, "group_detr", "mini", args.set)
    data = args.data_dir or REPO / "results" / "data" / block["pretrain_dataset"] / "mini"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        m = steps.run_detpre(block, scale="mini", arm=args.arm, seed=0, data_dir=data, encoder=args.encoder,
                             checkpoint=Path(tmp) / "model.pt", out=Path(tmp) / "metrics.json", threads=1)
        curve = read_json(Path(tmp) / "metrics.json")["meta"]["curve"]
    out = REPO / "benchmarks" / "results" / f"group_detr_gate-{args.arm}{'-' + args.tag if args.tag else ''}.json"
    write_json(out, {"arm": args.arm, "seed": 0, "set": args.set, "data_dir": str(data), "curve": curve,
                     "final": {k: m[k] for k in ("AP", "AP50", "AP_auc", "train_ms_per_step") if k in m},
                     "wall_s": round(time.perf_counter() - t0, 1), "loadavg_1min": os.getloadavg()[0],
                     "date": time.strftime("%Y-%m-%d %H:%M")})
    print(out, m.get("AP"), curve)


if __name__ == "__main__":
    main()
