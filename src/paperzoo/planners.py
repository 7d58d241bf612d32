"""The planners of ``paperzoo.predict``: each training rule of a study as jobs, with FLOPs per image.

A planner reads a study's config block (after the overlay) and returns one :class:`Job` per
training rule: how many runs, steps and images per step, and the FLOPs of one training step per
image, counted on PyTorch's ``meta`` device by :func:`forward_flops`. The method and its
approximations are in ``paperzoo.predict``'s docstring and each planner's own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


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
    extra_forward: Callable | None = None
    forward: Callable | None = None       # how one forward is called (default ``module(x)``)
    train_mode: bool = False              # count the forward in training mode (DETR query groups)
    arm: str = ""                         # the arm(s) this row stands for
    in_channels: int = 3                  # input tensor (1, in_channels, *image)
    example: Callable | None = None       # builds the example input instead
    device: str = "meta"                  # "cpu" where the forward needs values (point projections)
    key: tuple | None = None              # jobs with the same key share one count (same model and input)
    jobs: int | None = None               # Snakemake jobs these runs take (default: runs; 0: run in another row's jobs)
    ledger_match: Callable | None = None  # which of the rule's ledger jobs (by job name) are this rule's
    group: str | None = None              # rows of one rule with the same group run in the same job (summed)


def forward_flops(build: Callable, image: tuple[int, int], forward: Callable | None = None, *,
                  train_mode: bool = False, in_channels: int = 3, example: Callable | None = None,
                  device: str = "meta") -> tuple[int, int]:
    """(parameters, forward FLOPs of one image) of the module ``build()`` makes, counted on the
    meta device. ``forward(module, x)`` overrides the call (default ``module(x)`` in eval mode,
    or training mode with ``train_mode``); ``example()`` builds the input instead of
    ``(1, in_channels, *image)`` zeros. ``device="cpu"`` runs a real forward (for models whose
    ops need values, e.g. point-to-grid projections), seeded, without gradients."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    with torch.device(device):
        m = build()
        x = example() if example is not None else torch.zeros(1, in_channels, *image)
    m.train(train_mode)
    import contextlib

    with torch.no_grad() if device != "meta" else contextlib.nullcontext(), FlopCounterMode(display=False) as fc:
        (forward or (lambda mod, t: mod(t)))(m, x)
    return sum(p.numel() for p in m.parameters()), int(fc.get_total_flops())


def _dense_forward(m, x):
    """DenseDetector: pyramid + head (the loss and box decoding are not counted)."""
    return m.head(list(m.features(x).values()))


# --- planners: config block -> jobs ------------------------------------------------------------

def plan_kd_detr(block: dict, data: dict | None = None) -> list[Job]:
    from paperzoo.studies.kd_detr import models  # noqa: F401

    from paperzoo.layers import create_model

    t, s, tr = block["teacher"], block["student"], block["train"]
    size = (int(block["coco_size"]),) * 2 if block["dataset"] == "coco" else \
        (int((data or {}).get(block["dataset"], {}).get("image_size", 64)),) * 2
    seeds = int(block["seeds"])
    teacher = lambda: create_model(t["model"], num_classes=91 if block["dataset"] == "coco" else 4)  # noqa: E731
    student = lambda: create_model(s["model"], num_classes=91 if block["dataset"] == "coco" else 4)  # noqa: E731
    jobs = [Job("kd_detr", "kd_detr_teacher", 1, int(t["steps"]), int(tr["batch_size"]), size, t["model"], teacher)]
    if int(s.get("init_steps", 0)):
        jobs.append(Job("kd_detr", "kd_detr_init", 1 if s.get("init_seed") is not None else seeds,
                        int(s["init_steps"]), int(tr["batch_size"]), size, s["model"], student))
    cached = bool(block["kd"].get("teacher_cache", False))
    if cached:    # the teacher's outputs once per seed, forward only: one pass per stored pass (fused, plain)
        from paperzoo.studies.kd_detr.teacher_cache import passes_needed

        jobs.append(Job("kd_detr", "kd_detr_teacher_targets", seeds, int(s["steps"]), int(tr["batch_size"]), size,
                        t["model"], teacher, passes=float(len(passes_needed(block["arms"])))))
    for arm, a in block["arms"].items():      # the baseline (no distillation points) runs no teacher
        inline = bool(a) and not cached       # with the cache, KD arms read the teacher's outputs
        jobs.append(Job("kd_detr", "kd_detr_student", seeds, int(s["steps"]), int(tr["batch_size"]), size,
                        s["model"], student, arm=arm, extra=t["model"] if inline else None,
                        extra_build=teacher if inline else None))
    return jobs


def plan_cfnet(block: dict, data: dict | None = None) -> list[Job]:
    from paperzoo.studies.cfnet import steps as cf
    from paperzoo.studies.cfnet.pretrain import build_classifier

    size = (int(block["coco_size"]),) * 2 if block["dataset"] == "coco" else \
        (int((data or {}).get(block["dataset"], {}).get("image_size", 96)),) * 2
    ncls = 80 if block["dataset"] == "coco" else 4
    jobs = []
    for arm in block["run_arms"]:
        a = block["arms"][arm]
        if block.get("pretrained"):
            p = block["pretrain"]
            classifier = lambda a=a, p=p: build_classifier(  # noqa: E731
                a["model"], int(p["num_classes"]), int(p["hidden"]), **a.get("kwargs", {}))
            jobs.append(Job("cfnet", "cfnet_pretrain", 1, int(p["steps"]), int(p["batch_size"]),
                            (int(p["image_size"]),) * 2, a["model"], classifier, arm=arm))
        jobs.append(Job("cfnet", "cfnet_train", int(block["seeds"]), int(block["train"]["steps"]),
                        int(block["train"]["batch_size"]), size, a["model"],
                        lambda arm=arm: cf.build_detector(block, arm, ncls), forward=_dense_forward, arm=arm))
    return jobs


# images per class in the train split of the real benchmarks (the embedded ones read data.<dataset>)
TRAIN_PER_CLASS = {
    "cifar100": 500,       # CIFAR-100: 50,000 train images, 100 classes
    "imagenet_r": 120,     # ImageNet-R, L2P's 80/20 split: 24,000 train images over 200 classes (mean)
}


def plan_lae(block: dict, data: dict | None = None) -> list[Job]:
    """LAE: the upstream pretraining (embedded scales; the paper downloads its ViT-B/16) and every
    run arm × benchmark × class order. The backbone is frozen, so a PET step costs a forward and
    a backward for activations only: 2 forward-equivalents per image; head-only steps (LAE's
    frozen epochs, ``linear``) 1. A forked Seq-PET/LAE pair is planned as two runs (the shared
    first task is counted twice: a small overestimate)."""
    import torch

    from paperzoo.layers import create_model
    from paperzoo.studies.lae.steps import arm_seeds, backbone_from_config, train_from_config

    name, kw = backbone_from_config(block)
    build = lambda: create_model(name, **kw)  # noqa: E731
    with torch.device("meta"):
        size = int(build().patch_embed.img_size[0])
    jobs = []
    p = block["pretrain"]
    if p["source"] == "upstream":
        jobs.append(Job("lae", "lae_pretrain", 1, int(p["steps"]), int(p["batch_size"]), (size, size), name, build,
                        key=(name,)))
    for bench in block["benchmarks"]:
        b = block["bench"][bench]
        per_class = b.get("n_train_per_class") or TRAIN_PER_CLASS.get(b["dataset"]) or \
            int((data or {}).get(b["dataset"], {}).get("n_train_per_class", 0))
        if not per_class:
            raise ValueError(f"cost: lae benchmark {bench!r}: no train-set size for dataset {b['dataset']!r}")
        tr = train_from_config(block, b)
        n_tasks, cpt, bs = int(b["n_tasks"]), int(b["classes_per_task"]), tr["batch_size"]
        per_epoch = -(-per_class * cpt // bs)                       # steps per epoch of one task
        for arm, a in block["arms"].items():
            runs = len(arm_seeds(block, arm))
            m = a["method"]
            if m in ("seq", "lae"):        # task 1 trains PET and head throughout; later tasks freeze PET first
                pet_steps = per_epoch * (tr["epochs"] + (n_tasks - 1) * (tr["epochs"] - tr["freeze_epochs"]))
                head_steps = per_epoch * (n_tasks - 1) * tr["freeze_epochs"]
                steps, passes = pet_steps + head_steps, (2 * pet_steps + head_steps) / (pet_steps + head_steps)
            elif m == "linear":
                steps, passes = per_epoch * tr["epochs"] * n_tasks, 1.0
            elif m == "joint":
                steps = -(-per_class * cpt * n_tasks // bs) * tr["epochs"]
                passes = 1.0 if a.get("pet") is None else 2.0
            elif m == "calib":
                c = block["calib"]
                steps = int(c["warmup_steps"]) + 2 * int(c["steps"])
                passes = (int(c["warmup_steps"]) + 4 * int(c["steps"])) / steps
            else:
                raise ValueError(f"cost: lae arm {arm!r}: unknown method {m!r}")
            paired = m in ("seq", "lae") and block.get("fork_seq") and f"seq_{a.get('pet')}" in block["arms"] \
                and f"lae_{a.get('pet')}" in block["arms"]
            jobs.append(Job("lae", "lae_train_pair" if paired else "lae_train", runs, steps, bs, (size, size), name,
                            build, passes=passes, arm=f"{bench}_{arm}", key=(name,),
                            jobs=(runs if m == "seq" else 0) if paired else None,
                            group=f"{bench}_{a.get('pet')}" if paired else None,
                            ledger_match=(lambda j: "_seq_lae_" in j) if paired else (lambda j: "_seq_lae_" not in j)))
    return jobs


def _scan(n: int, model: dict):
    """``n`` points (1, n, 4) spread over the BEV range and the range view's field of view."""
    import math

    import torch

    x0, x1, y0, y1 = model["bev_range"]
    r = torch.rand(n) * 0.95 * min(x1, y1) + 1.0
    az = torch.rand(n) * 2 * math.pi
    lo, hi = (math.radians(a) for a in model["rv_fov"])
    el = lo + torch.rand(n) * (hi - lo)
    return torch.stack((r * az.cos(), r * az.sin(), r * el.tan(), torch.rand(n)), -1)[None]


def plan_cpgnet(block: dict, data: dict | None = None) -> list[Job]:
    """CPGNet: every arm × seed; one forward of one scan of ``train.n_points`` points (the grid
    branches' convolutions dominate and do not depend on the point count); TCL's second view
    doubles the passes."""

    from paperzoo.studies.cpgnet.model import cpgnet_from_config

    tr, n = block["train"], int(block["train"]["n_points"])
    jobs = []
    for arm, a in block["arms"].items():
        bs = int(a.get("batch_size") or tr["batch_size"])
        jobs.append(Job("cpgnet", "cpgnet_train", int(block["seeds"]), int(tr["steps"]), bs, (n, 4), a["model"],
                        lambda arm=arm: cpgnet_from_config(block, arm), passes=6.0 if a.get("tcl") else 3.0,
                        arm=arm, example=lambda: _scan(n, block["model"]), device="cpu",
                        key=(a["model"], repr({k: v for k, v in a.items() if k not in ("tcl", "batch_size")}))))
    return jobs


def plan_drkd(block: dict, data: dict | None = None) -> list[Job]:
    """DRKD: the teacher (once), the students' init (if any), every arm × seed; an arm with a
    distillation term adds the frozen teacher's forward (the relation kit's own cost is not
    counted: small against the detectors)."""
    from paperzoo.studies.drkd import models  # noqa: F401
    from paperzoo.studies.drkd import steps as dk

    size = (int(block["coco_size"]),) * 2 if block["dataset"] == "coco" else \
        (int((data or {}).get(block["dataset"], {}).get("image_size", 96)),) * 2
    ncls = 80 if block["dataset"] == "coco" else 4
    t, s, bs = block["teacher"], block["student"], int(block["train"]["batch_size"])
    teacher = lambda: dk.build_detector(block, "teacher", ncls)  # noqa: E731
    student = lambda: dk.build_detector(block, "student", ncls)  # noqa: E731
    jobs = [Job("drkd", "drkd_teacher", 1, int(t["steps"]), bs, size, t["model"], teacher, forward=_dense_forward)]
    if int(s.get("init_steps") or 0):
        jobs.append(Job("drkd", "drkd_init", 1 if s.get("init_seed") is not None else int(block["seeds"]),
                        int(s["init_steps"]), bs, size, s["model"], student, forward=_dense_forward))
    for arm, a in block["arms"].items():
        kd = any(bool(a.get(k)) for k in ("prd", "ird", "ins", "fitnet"))
        jobs.append(Job("drkd", "drkd_student", int(block["seeds"]), int(s["steps"]), bs, size, s["model"], student,
                        forward=_dense_forward, arm=arm, extra=t["model"] if kd else None,
                        extra_build=teacher if kd else None, extra_forward=_dense_forward))
    return jobs


def plan_group_detr(block: dict, data: dict | None = None) -> list[Job]:
    """Group DETR v2: stage E (MAE: the ViT encodes the visible ``1 - mask_ratio`` of the patches;
    its light decoder is not counted), stage D and stage F per arm × seed, the detector counted in
    training mode (every query group runs in the decoder)."""
    from paperzoo.studies.group_detr import steps as gd

    size = (int((data or {}).get(block["pretrain_dataset"], {}).get("image_size", 64)),) * 2
    ncls = 6 if block["pretrain_dataset"] != "coco" else 91
    jobs = []
    m = block["mim"]
    vis = 1.0 - float(m["mask_ratio"])
    jobs.append(Job("group_detr", "group_detr_mim", 1, int(m["steps"]), int(m["batch_size"]), size,
                    f"{block['model']} ViT", lambda: gd.build_detector(block, ncls, 1, 0).backbone, passes=3.0 * vis))
    for stage, rule in (("detpre", "group_detr_detpre"), ("finetune", "group_detr_finetune")):
        o = block[stage]
        for arm, a in block["arms"][stage].items():
            k = int(a["num_groups"])
            jobs.append(Job("group_detr", rule, int(block["seeds"]), int(o["steps"]), int(o["batch_size"]), size,
                            block["model"], lambda k=k: gd.build_detector(block, ncls, k, 0), train_mode=True,
                            arm=arm))
    return jobs


def plan_apis(block: dict, data: dict | None = None) -> list[Job]:
    """APIS: P0 per seed, the active rounds per strategy × seed, the full-mask reference per seed;
    one "image" is one box crop (``crop.size``², 5 channels: RGB + two coordinate maps). The
    rounds' point selection (an 8-view forward over every training instance) is not counted."""
    from paperzoo.studies.apis import steps as ap

    h, p0, r, fm = ap.head_from_config(block), ap.p0_from_config(block), ap.rounds_from_config(block), \
        ap.fullmask_from_config(block)
    size, seeds = (h["size"], h["size"]), int(block["seeds"])
    build = lambda: ap.build_head(block, 0)  # noqa: E731
    kw = {"in_channels": 5, "key": (h["model"],)}
    jobs = [Job("apis", "apis_p0", seeds, p0["steps"], p0["batch_size"], size, h["model"], build, **kw)]
    for strat in block["strategies"]:
        jobs.append(Job("apis", "apis_active", seeds, r["n"] * r["steps"], r["batch_size"], size, h["model"], build,
                        arm=strat, **kw))
    jobs.append(Job("apis", "apis_fullmask", seeds, fm["steps"], fm["batch_size"], size, h["model"], build, **kw))
    return jobs


PLANNERS = {"kd_detr": plan_kd_detr, "apis": plan_apis, "cfnet": plan_cfnet, "lae": plan_lae, "cpgnet": plan_cpgnet,
            "drkd": plan_drkd, "group_detr": plan_group_detr}
NOT_PLANNED = {
    "ufo": "not planned yet (elastic supernet: the sampled path sets the cost; no paper-scale setting)",
}
