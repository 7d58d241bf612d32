"""DRKD gate: AP-vs-step curve of the teacher or of one student arm (seed 0), and its cost.

    python benchmarks/bench_drkd_gate.py --part teacher [--steps 1600] [--every 400] [--set K=V]
    python benchmarks/bench_drkd_gate.py --part student --arm baseline --teacher T.pt [--steps 800]

Uses the mini ``drkd`` config (plus ``--set`` overrides, values read as YAML) and the DAG's
``results/data/<dataset>/mini`` data. ``--part teacher`` trains the teacher (checkpoint written
to ``--save``, default ``benchmarks/results/drkd_gate-teacher.pt``, ignored by git);
``--part student`` trains arm ``--arm`` of seed 0 from the untrained seeded student against the
frozen teacher ``--teacher``. COCO AP on the val split every ``--every`` steps; the curve,
parameters, GFLOPs, ms/step and wall time go to ``benchmarks/results/drkd_gate-<part>[-<arm>][-<tag>].json``.

The curves set the study's budgets on quantities no claim tests: the teacher-student gap of
the precondition and where the baseline's AP curve flattens. Arm differences are not looked
at. Run one or two at a time (1 thread each) on an otherwise idle machine.
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
    ap.add_argument("--part", choices=("teacher", "student"), required=True)
    ap.add_argument("--arm", default="baseline")
    ap.add_argument("--teacher", type=Path)
    ap.add_argument("--save", type=Path, default=REPO / "benchmarks" / "results" / "drkd_gate-teacher.pt")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--every", type=int, default=400)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.flops import flops_per_image
    from paperzoo.engine.seeding import seed_everything
    from paperzoo.engine.train import train
    from paperzoo.layers.dense import detection_loss_fn
    from paperzoo.studies.drkd import steps as dk
    from paperzoo.studies.drkd.models import DistillStudent

    block = load_block(REPO, "drkd", "mini", args.set)
    if args.steps:
        block[args.part]["steps"] = args.steps
    seed = int(block["teacher"]["seed"]) if args.part == "teacher" else 0
    seed_everything(seed, 1)
    ev, fit, val, mean, std, size = dk._setup(block, REPO / "results" / "data" / block["dataset"] / "mini", seed, 1)
    o, kd = dk.opt_from_config(block, args.part), dk.kd_from_config(block)
    torch.manual_seed(seed)
    det = dk.build_detector(block, args.part, fit.num_classes)
    gflops = flops_per_image(det, size) / 1e9
    if args.part == "teacher":
        model, loss_fn, final, evaluated = det, detection_loss_fn(size), args.save, det
    else:
        teacher = dk._load_frozen(block, fit.num_classes, args.teacher) if args.teacher else None
        kit = dk.build_kit(block, args.arm, det.features.out_channels, len(det.features.strides), seed)
        model = DistillStudent(det, kit)
        loss_fn, final, evaluated = dk.make_loss_fn(size, teacher=teacher, kd=kd, seed=seed), None, det

    def callback(step, m):
        return dk.evaluate(evaluated, val, mean, std, area_rule=ev["area_rule"], abs_areas=ev["abs_areas"])

    t0 = time.perf_counter()
    hist = train(model, loss_fn, StepBatches(fit, o["batch_size"], seed, mean, std, hflip=o["hflip"]),
                 steps=o["steps"], final=final, callback=callback, eval_every=args.every, **dk.optim_kwargs(o),
                 desc=f"gate {args.part} {args.arm if args.part == 'student' else ''}")
    wall = time.perf_counter() - t0
    curve = [{k: r[k] for k in ("step", "AP", "AP50", "AP_S_abs", "loss") if k in r} for r in hist if "AP" in r]
    name = f"drkd_gate-{args.part}" + (f"-{args.arm}" if args.part == "student" else "") + (
        f"-{args.tag}" if args.tag else "")
    out = REPO / "benchmarks" / "results" / f"{name}.json"
    write_json(out, {"part": args.part, "arm": args.arm if args.part == "student" else None, "seed": seed,
                     "model": o["model"], "steps": o["steps"], "set": args.set, "curve": curve,
                     "params": sum(p.numel() for p in det.parameters()), "gflops_per_img": round(gflops, 4),
                     "wall_s": round(wall, 1), "ms_per_step_incl_eval": round(1000 * wall / o["steps"], 1),
                     "loadavg_1min": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M")})
    print(out, curve[-1] if curve else None)


if __name__ == "__main__":
    main()
