"""Cost before compute: parameters, FLOPs and predicted device-hours per training rule.

    python -m paperzoo.cost --scale paper [--tflops 60] [--study kd_detr ...]

For every training rule of a study at the given scale (its config after the overlay), the
models are built on PyTorch's ``meta`` device (no memory, no weights) and one forward pass of
one image is counted with ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts
2). A training step costs about 3 forward passes (backward ≈ 2 × forward) per image; a
distilled student adds the frozen teacher's forward. Then

    FLOPs of a rule = runs × steps × batch × FLOPs per image and step,
    device-hours    = FLOPs / (``--tflops`` × 1e12) / 3600,

where ``--tflops`` is the *sustained* throughput you expect of your accelerator on this model
(an assumption you set, not a measurement; a well-fed A100 in mixed precision sustains very
roughly 60-120 TFLOP/s on convolutional and transformer detectors). Evaluation, data loading
and the DETR matchers' CPU work are not counted, so the figure is a floor.

Studies planned: ``kd_detr`` and ``cfnet`` (the other learning studies print a row that says
what is missing). The SLURM profile's per-rule ``runtime`` is still a fixed default; see the
issue notes.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

from paperzoo.engine.config import load_block


@dataclass
class Job:
    """One training rule: ``runs`` jobs of ``steps`` steps at ``batch`` images, each image
    costing ``passes`` forward passes of ``model`` plus ``extra_fwd`` forward passes of
    ``extra`` (a frozen teacher)."""
    study: str
    rule: str
    runs: int
    steps: int
    batch: int
    image: tuple[int, int]
    model: str
    build: Callable
    passes: float = 3.0
    extra: str | None = None
    extra_build: Callable | None = None
    extra_fwd: float = 1.0
    forward: Callable | None = None       # how one forward is called (default ``module(x)``)


def forward_flops(build: Callable, image: tuple[int, int], forward: Callable | None = None) -> tuple[int, int]:
    """(parameters, forward FLOPs of one image) of the module ``build()`` makes, counted on the
    meta device. ``forward(module, x)`` overrides the call (default ``module(x)`` in eval mode)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        m = build()
        x = torch.zeros(1, 3, *image)
    m.eval()
    with FlopCounterMode(display=False) as fc:
        (forward or (lambda mod, t: mod(t)))(m, x)
    return sum(p.numel() for p in m.parameters()), int(fc.get_total_flops())


def _dense_forward(m, x):
    """DenseDetector: pyramid + head (the loss and box decoding are not counted)."""
    return m.head(list(m.features(x).values()))


# --- planners: config block -> jobs ------------------------------------------------------------

def plan_kd_detr(block: dict) -> list[Job]:
    from paperzoo.studies.kd_detr import models  # noqa: F401

    from paperzoo.layers import create_model

    t, s, tr = block["teacher"], block["student"], block["train"]
    size = (int(block["coco_size"]),) * 2
    seeds, arms = int(block["seeds"]), len(block["arms"])
    teacher = lambda: create_model(t["model"], num_classes=91 if block["dataset"] == "coco" else 4)  # noqa: E731
    student = lambda: create_model(s["model"], num_classes=91 if block["dataset"] == "coco" else 4)  # noqa: E731
    jobs = [Job("kd_detr", "kd_detr_teacher", 1, int(t["steps"]), int(tr["batch_size"]), size, t["model"], teacher)]
    if int(s.get("init_steps", 0)):
        jobs.append(Job("kd_detr", "kd_detr_init", 1 if s.get("init_seed") is not None else seeds,
                        int(s["init_steps"]), int(tr["batch_size"]), size, s["model"], student))
    jobs.append(Job("kd_detr", "kd_detr_student", arms * seeds, int(s["steps"]), int(tr["batch_size"]), size,
                    s["model"], student, extra=t["model"], extra_build=teacher))
    return jobs


def plan_cfnet(block: dict) -> list[Job]:
    from paperzoo.studies.cfnet import steps as cf
    from paperzoo.studies.cfnet.pretrain import build_classifier

    size = (int(block["coco_size"]),) * 2 if block["dataset"] == "coco" else (96, 96)
    ncls = 80 if block["dataset"] == "coco" else 4
    jobs = []
    for arm in block["run_arms"]:
        a = block["arms"][arm]
        if block.get("pretrained"):
            p = block["pretrain"]
            jobs.append(Job("cfnet", "cfnet_pretrain", 1, int(p["steps"]), int(p["batch_size"]),
                            (int(p["image_size"]),) * 2, a["model"],
                            lambda a=a, p=p: build_classifier(a["model"], int(p["num_classes"]), int(p["hidden"]),
                                                              **a.get("kwargs", {}))))
        jobs.append(Job("cfnet", "cfnet_train", int(block["seeds"]), int(block["train"]["steps"]),
                        int(block["train"]["batch_size"]), size, a["model"],
                        lambda arm=arm: cf.build_detector(block, arm, ncls), forward=_dense_forward))
    return jobs


PLANNERS = {"kd_detr": plan_kd_detr, "cfnet": plan_cfnet}
NOT_PLANNED = {
    "lae": "not planned yet: ViT-B/16 per task x PET x method x order",
    "cpgnet": "not planned yet: the point-grid model's FLOPs depend on the scan's point count",
    "drkd": "no paper-scale setting", "group_detr": "no paper-scale setting", "apis": "no paper-scale setting",
    "ufo": "no paper-scale setting",
}


def rows(scale: str, studies: list[str] | None, tflops: float, root=".") -> list[dict]:
    from pathlib import Path

    from paperzoo.engine.io import read_yaml

    enabled = read_yaml(Path(root) / "config" / "config.yaml")["studies"]
    out = []
    for study in studies or enabled:
        if study not in PLANNERS:
            out.append({"study": study, "rule": "—", "note": NOT_PLANNED.get(study, "no training rules")})
            continue
        for job in PLANNERS[study](load_block(Path(root), study, scale, [])):
            params, f1 = forward_flops(job.build, job.image, job.forward)
            per_img = job.passes * f1
            if job.extra_build is not None:
                _, fx = forward_flops(job.extra_build, job.image)
                per_img += job.extra_fwd * fx
            total = job.runs * job.steps * job.batch * per_img
            out.append({"study": study, "rule": job.rule, "model": job.model + (f" (+ {job.extra} fwd)" if job.extra
                                                                                  else ""),
                        "params_M": params / 1e6, "image": f"{job.image[0]}x{job.image[1]}",
                        "fwd_GFLOPs_per_img": f1 / 1e9, "runs": job.runs, "steps": job.steps, "batch": job.batch,
                        "PFLOPs": total / 1e15, "device_hours": total / (tflops * 1e12) / 3600})
    return out


def markdown(table: list[dict], scale: str, tflops: float) -> str:
    lines = [f"Predicted training cost at scale `{scale}`, {tflops:g} TFLOP/s sustained (an assumption): "
             "FLOPs counted on the meta device, 3 forward passes per training image (+ 1 teacher forward for a "
             "distilled student); evaluation and data loading not counted.", "",
             "| study | rule | model | params (M) | image | fwd GFLOPs/img | runs | steps | batch | PFLOPs | device-h |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    total = 0.0
    for r in table:
        if "note" in r:
            lines.append(f"| `{r['study']}` | — | {r['note']} | | | | | | | | |")
            continue
        total += r["device_hours"]
        lines.append(f"| `{r['study']}` | {r['rule']} | `{r['model']}` | {r['params_M']:.1f} | {r['image']} | "
                     f"{r['fwd_GFLOPs_per_img']:.1f} | {r['runs']} | {r['steps']:,} | {r['batch']} | "
                     f"{r['PFLOPs']:,.1f} | {r['device_hours']:,.0f} |")
    lines.append(f"| **total** | | | | | | | | | | **{total:,.0f}** |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="paper")
    ap.add_argument("--study", action="append", help="only these studies (repeatable)")
    ap.add_argument("--tflops", type=float, default=60.0, help="sustained accelerator TFLOP/s you expect")
    args = ap.parse_args(argv)
    if args.tflops <= 0:
        ap.error("--tflops must be positive")
    print(markdown(rows(args.scale, args.study, args.tflops), args.scale, args.tflops))


if __name__ == "__main__":
    main()
