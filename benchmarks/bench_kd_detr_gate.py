"""KD-DETR gates: AP-vs-step curves of the teacher, a student init, or one arm of seed 0.

    python benchmarks/bench_kd_detr_gate.py teacher [--set anchors.std=0.5 ...] [--every 500]
    python benchmarks/bench_kd_detr_gate.py init --seed 0 [--set ...]
    python benchmarks/bench_kd_detr_gate.py arm --arm kd_detr --seed 0 --teacher T.pt --init I.pt

Trains with the mini ``kd_detr`` config (plus ``--set`` overrides of the block, values read
as YAML) on the DAG's ``results/data/<dataset>/mini`` data and evaluates COCO AP on the val
split every ``--every`` steps. Writes the curve, the config used and the wall time to
``benchmarks/results/kd_detr_gate-<part>[-<tag>].json``; with ``--checkpoint`` the trained
weights too (an ``arm`` run needs a teacher and an init checkpoint).

These curves set budgets on quantities no claim tests: the teacher's AP and the
teacher-student gap (the anchor law and the student's lr), and the step count of the arms,
read off seed 0's ``baseline`` curve (the undistilled student: not hopeless, not saturated)
before any distillation arm is run. (Until 2026-12-02 the arms continued the whole init
detector and the step count was read off the ``kd_detr`` curve's recovery from a
distillation transient; ``kd_detr_gate-arm-*-1200.json`` are those curves.) Run one or two at a time (1 thread each) on an otherwise idle
machine.
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
    ap.add_argument("part", choices=("teacher", "init", "arm"))
    ap.add_argument("--arm", default="kd_detr")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--steps", type=int, help="override the part's step count")
    ap.add_argument("--teacher", type=Path)
    ap.add_argument("--init", type=Path)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from paperzoo.engine.seeding import seed_everything
    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.train import train
    from paperzoo.studies.kd_detr import steps as kd

    block = load_block(REPO, "kd_detr", "mini", args.set)
    data_dir = REPO / "results" / "data" / block["dataset"] / "mini"
    ev = kd.eval_from_config(block)
    seed = int(block["teacher"].get("seed", 0)) if args.part == "teacher" else args.seed
    seed_everything(seed, 1)
    train_set, val, mean, std = kd.load_data(data_dir, ev["dataset"], ev["n_val"], ev["coco_size"])
    part = "teacher" if args.part == "teacher" else "student"
    o = kd.opt_from_config(block, part)
    steps = args.steps or (o["init_steps"] if args.part == "init" else o["steps"])
    model = kd.build_arm_model(block, part, train_set.num_classes, seed)
    crit, weights = kd.make_criterion(o, train_set.num_classes, len(model.decoder.layers))
    batch_seed, sched = seed, {}
    if args.part == "init":
        batch_seed, sched = seed + 50_000, {"schedule": "constant"}   # as steps.run_init
    if args.part == "arm":
        teacher = kd._load_frozen(block["teacher"]["model"], train_set.num_classes, args.teacher)
        kd.load_init(model, args.init, o["init_load"])   # as steps.run_student: whole detector or backbone only
        loss_fn = kd.make_loss_fn(crit, weights, arm=kd.arm_from_config(block, args.arm), teacher=teacher,
                                  kd=kd.kd_from_config(block), seed=seed)
    else:
        loss_fn = kd.make_loss_fn(crit, weights)

    def callback(step, m):
        return kd.evaluate(m, val, mean, std, top_k=ev["top_k"], area_rule=ev["area_rule"])

    t0 = time.perf_counter()
    hist = train(model, loss_fn, StepBatches(train_set, o["batch_size"], batch_seed, mean, std), steps=steps,
                 final=None, **{**kd.optim_kwargs(model, o), **sched}, callback=callback, eval_every=args.every,
                 desc=f"gate {args.part}")
    wall = time.perf_counter() - t0
    if args.checkpoint:
        from paperzoo.engine.checkpoint import save_checkpoint

        save_checkpoint(args.checkpoint, {"model": model.state_dict(), "ema": None, "history": [], "steps": steps})
    curve = [{k: r[k] for k in ("step", "AP", "AP50", "AP75") if k in r} for r in hist if "AP" in r]
    name = args.part + (f"-{args.arm}" if args.part == "arm" else "") + (f"-{args.tag}" if args.tag else "")
    out = REPO / "benchmarks" / "results" / f"kd_detr_gate-{name}.json"
    write_json(out, {"part": args.part, "arm": args.arm if args.part == "arm" else None, "seed": seed,
                     "steps": steps, "set": args.set, "model": o["model"], "lr": o["lr"], "curve": curve,
                     "wall_s": round(wall, 1), "n_params": sum(p.numel() for p in model.parameters()),
                     "date": time.strftime("%Y-%m-%d %H:%M")})
    print(out, curve[-1] if curve else None)


if __name__ == "__main__":
    main()
