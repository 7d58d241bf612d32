"""CFNet gate: AP-vs-step curve of one arm of seed 0, and its cost.

    python benchmarks/bench_cfnet_gate.py --arm cfnet_m2 [--steps 1500] [--every 250] [--set train.lr=1e-3]

Trains arm ``--arm`` (seed 0) with the mini ``cfnet`` config (plus ``--set`` overrides of the
block, values read as YAML) on the DAG's ``results/data/<dataset>/mini`` data for ``--steps``
steps (the schedule spans those steps), evaluating COCO AP on the val split every
``--every`` steps. Writes the curve, parameters, GFLOPs, ms/step and the wall time to
``benchmarks/results/cfnet_gate-<arm>[-<tag>].json``.

The curves set the study's step budget on quantities no claim tests: that every arm takes
off and where the AP curve of the baseline and of the central arm flattens; the arm
differences are not looked at. Run one or two at a time (1 thread each) on an otherwise idle
machine (the load average is recorded).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from paperzoo.engine.config import load_block  # noqa: E402
from paperzoo.engine.io import write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arm", required=True)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.seeding import seed_everything
    from paperzoo.engine.train import train
    from paperzoo.studies.cfnet import steps as cf

    block = load_block(REPO, "cfnet", "mini", args.set)
    if args.steps:
        block["train"]["steps"] = args.steps
    o, ev = cf.train_from_config(block), cf.eval_from_config(block)
    seed_everything(0, 1)
    train_set, val, mean, std = cf.load_data(REPO / "results" / "data" / ev["dataset"] / "mini", ev["dataset"],
                                             ev["n_val"])
    size = int(train_set.images.shape[-1])
    costs = cf.model_costs(block, args.arm, train_set.num_classes, size)
    torch.manual_seed(0)
    model = cf.build_detector(block, args.arm, train_set.num_classes)

    def callback(step, m):
        return cf.evaluate(m, val, mean, std, area_rule=ev["area_rule"], abs_areas=ev["abs_areas"])

    t0 = time.perf_counter()
    hist = train(model, cf.make_loss_fn(size), StepBatches(train_set, o["batch_size"], 0, mean, std), steps=o["steps"],
                 final=None, lr=o["lr"], weight_decay=o["weight_decay"], clip_grad=o["clip_grad"],
                 schedule=o["schedule"], warmup=o["warmup"], callback=callback, eval_every=args.every,
                 desc=f"gate {args.arm}")
    wall = time.perf_counter() - t0
    curve = [{k: r[k] for k in ("step", "AP", "AP50", "AP_S_abs", "loss") if k in r} for r in hist if "AP" in r]
    out = REPO / "benchmarks" / "results" / f"cfnet_gate-{args.arm}{'-' + args.tag if args.tag else ''}.json"
    write_json(out, {"arm": args.arm, "seed": 0, "steps": o["steps"], "set": args.set, "curve": curve, **costs,
                     "wall_s": round(wall, 1), "ms_per_step_incl_eval": round(1000 * wall / o["steps"], 1),
                     "loadavg_1min": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M")})
    print(out, curve[-1] if curve else None)


if __name__ == "__main__":
    main()
