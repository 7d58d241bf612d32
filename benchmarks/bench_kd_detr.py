"""KD-DETR: cost of a distillation step against the plain student step, per arm.

    python benchmarks/bench_kd_detr.py [--threads 1] [--steps 40]

Times ``--steps`` optimizer steps of each arm of the ``kd_detr`` config (mini scale: the
DETR-lite student at batch 16 on 64-px ``shapes_easy`` images, the DETR-lite teacher for
the distillation targets) through ``engine.train``, after 3 untimed warm-up steps, and
writes images/s and ms/step per arm plus the ratio to the plain student step to
``benchmarks/results/kd_detr.json``. ``teacher_ms_per_step`` is the teacher's share: its
no-grad forward alone on the same batches and points (the fused own + general pass of the
arms with general points, the plain pass otherwise), i.e. what a per-seed cache of the
teacher's outputs saves (they depend only on the seed and the step; ``kd.teacher_cache``,
on at mini: the DAG's arms read them; this benchmark always runs the teacher inline).
Weights are untrained: the cost of a step does not depend on them. Data: a small
``shapes_easy`` split generated into a temporary folder.
Take the numbers on an idle machine (the load average is recorded).
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from paperzoo.engine.config import resolve  # noqa: E402
from paperzoo.engine.io import read_yaml, write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "kd_detr.json"


def _teacher_ms(teacher, batches, arm: dict, kdc: dict, steps: int) -> float:
    """ms per step of the teacher's no-grad forward as the arm's loss calls it (0 for no KD)."""
    from paperzoo.studies.kd_detr.recipe import distils
    from paperzoo.studies.kd_detr.sampling import general_points
    from paperzoo.studies.kd_detr.teacher_cache import teacher_pass

    if not distils(arm):
        return 0.0
    t = 0.0
    for step in range(3, 3 + steps):
        images, _, _ = batches(step)
        general = (general_points(kdc["num_general"], 0, step, kdc["general_mean"], kdc["general_std"])
                   if arm["general"] else None)
        t0 = time.perf_counter()
        teacher_pass(teacher, images, general)
        t += time.perf_counter() - t0
    return 1e3 * t / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from paperzoo.data.generate import generate
    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.train import train
    from paperzoo.studies.kd_detr import steps as kd
    from paperzoo.studies.kd_detr.models import build_model

    cfg = resolve({**read_yaml(REPO / "config" / "config.yaml"), "scale": "mini"}, REPO)
    block = cfg["kd_detr"]
    spec = {**cfg["data"][block["dataset"]], "n_train": 256, "n_val": 16}
    res = {}
    with tempfile.TemporaryDirectory() as d:
        generate(block["dataset"], spec, Path(d))
        train_set, _, mean, std = kd.load_data(d, block["dataset"], 16)
        o, kdc = kd.opt_from_config(block, "student"), kd.kd_from_config(block)
        torch.manual_seed(0)
        teacher = build_model(block["teacher"]["model"], train_set.num_classes).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        for arm in block["arms"]:
            torch.manual_seed(0)
            student = build_model(o["model"], train_set.num_classes)
            crit, weights = kd.make_criterion(o, train_set.num_classes, len(student.decoder.layers))
            loss_fn = kd.make_loss_fn(crit, weights, arm=kd.arm_from_config(block, arm), teacher=teacher, kd=kdc)
            batches = StepBatches(train_set, o["batch_size"], 0, mean, std)
            train(student, loss_fn, batches, steps=3, lr=o["lr"], progress=False)          # warm-up
            t0 = time.perf_counter()
            train(student, loss_fn, batches, steps=args.steps, lr=o["lr"], clip_grad=o["clip_grad"], progress=False)
            ms = 1e3 * (time.perf_counter() - t0) / args.steps
            res[arm] = {"ms_per_step": round(ms, 2), "img_per_s": round(o["batch_size"] * 1e3 / ms, 1),
                        "teacher_ms_per_step": round(_teacher_ms(teacher, batches, kd.arm_from_config(block, arm),
                                                                 kdc, args.steps), 2)}
            print(arm, res[arm], flush=True)
    base = res["baseline"]["ms_per_step"]
    for r in res.values():
        r["vs_plain_step"] = round(r["ms_per_step"] / base, 3)
    write_json(OUT, {"results": res, "steps": args.steps, "batch_size": o["batch_size"], "student": o["model"],
                     "teacher": block["teacher"]["model"], "num_general": kdc["num_general"],
                     "threads": args.threads, "torch": torch.__version__, "host": platform.node(),
                     "loadavg_1min": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M:%S")})


if __name__ == "__main__":
    main()
