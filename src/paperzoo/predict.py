"""Cost before compute: parameters, FLOPs and predicted device-hours per training rule.

    python -m paperzoo.predict --scale paper [--tflops 60] [--study kd_detr ...]

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

Every paper-scale learning study is planned: ``kd_detr``, ``cfnet``, ``lae`` and ``cpgnet``
(the studies ``config/scales/paper.yaml`` enables); at ``mini``/``tiny`` also ``drkd``,
``group_detr`` and ``apis`` (``ufo`` prints a row saying it is not planned: the sampled path
sets its cost). Per-study approximations are in each planner's docstring (LAE's frozen
backbone needs no weight gradients: 2 forward-equivalents per PET step, 1 per head-only step).

Two uses beyond the table:

* ``--profile FILE`` rewrites the ``set-resources`` block of a SLURM profile: every planned rule
  gets ``runtime`` = its longest job's predicted minutes × ``--safety`` + 15 minutes of start-up
  and evaluation, rounded up to 15 minutes (``workflow/profiles/slurm/config.yaml`` holds the
  result for ``--scale paper --tflops 60``; a test recomputes it).
* ``--validate LEDGER`` (at an embedded scale) sets the prediction against what ran: for every
  planned rule with jobs in the cost ledger (``results/report/<scale>/cost_jobs.csv``), the
  predicted FLOPs per job over the measured mean job seconds = the achieved GFLOP/s, and that as
  a fraction of ``--peak-gflops`` (the machine's 1-thread fp32 GEMM peak, ``benchmarks/bench_gemm.py``).
"""
from __future__ import annotations

import argparse
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


# parameter counts the papers publish for the models we build at paper scale (None: not confirmed)
PUBLISHED_PARAMS_M = {
    "vit_base_patch16_224_in21k_lae": (86.0, "ViT-Base, Dosovitskiy et al. 2021, Table 1"),
    "dab_detr_r50": (44.0, "DAB-DETR-R50, Liu et al. 2022, Table 2"),
}


def rows(scale: str, studies: list[str] | None, tflops: float, root=".") -> list[dict]:
    """One row per planned (study, rule, arm): parameters, forward GFLOPs per image, runs, steps,
    batch, FLOPs per job and in all, device-hours per job and in all; a study without a planner
    gets a row with a ``note``."""
    from pathlib import Path

    from paperzoo.engine.config import resolve, study_block
    from paperzoo.engine.io import read_yaml

    cfg = resolve({**read_yaml(Path(root) / "config" / "config.yaml"), "scale": scale}, Path(root))
    data = cfg.get("data", {})
    out, counted = [], {}
    for study in studies or cfg["studies"]:
        if study not in PLANNERS:
            out.append({"study": study, "rule": "—", "note": NOT_PLANNED.get(study, "no training rules")})
            continue
        for job in PLANNERS[study](study_block(cfg, study), data):
            key = (study, job.key) if job.key is not None else None
            if key not in counted or key is None:
                counted[key] = forward_flops(job.build, job.image, job.forward, train_mode=job.train_mode,
                                             in_channels=job.in_channels, example=job.example, device=job.device)
            params, f1 = counted[key]
            per_img = job.passes * f1
            if job.extra_build is not None:
                _, fx = forward_flops(job.extra_build, job.image, job.extra_forward)
                per_img += job.extra_fwd * fx
            per_job = job.steps * job.batch * per_img
            pub = PUBLISHED_PARAMS_M.get(job.model)
            out.append({"study": study, "rule": job.rule, "arm": job.arm,
                        "model": job.model + (f" (+ {job.extra} fwd)" if job.extra else ""),
                        "params_M": params / 1e6, "published_params_M": pub[0] if pub else None,
                        "published_source": pub[1] if pub else None,
                        "image": f"{job.image[0]}x{job.image[1]}", "fwd_GFLOPs_per_img": f1 / 1e9,
                        "passes": job.passes, "runs": job.runs, "jobs": job.runs if job.jobs is None else job.jobs,
                        "ledger_rule": job.rule.removeprefix(f"{study}_").removesuffix("_pair"),
                        "ledger_match": job.ledger_match, "group": job.group or job.arm, "steps": job.steps, "batch": job.batch,
                        "TFLOPs_per_job": per_job / 1e12, "PFLOPs": job.runs * per_job / 1e15,
                        "hours_per_job": per_job / (tflops * 1e12) / 3600,
                        "device_hours": job.runs * per_job / (tflops * 1e12) / 3600})
    return out


def _num(x: float) -> str:
    """Three significant digits, no exponent for the sizes this table has."""
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def markdown(table: list[dict], scale: str, tflops: float) -> str:
    lines = [f"Predicted training cost at scale `{scale}`, {tflops:g} TFLOP/s sustained (an assumption): "
             "FLOPs counted on the meta device, 3 forward passes per training image (+ 1 teacher forward for a "
             "distilled student; LAE's frozen backbone: 2 per PET step, 1 per head-only step); evaluation and "
             "data loading not counted, so the figures are floors.", "",
             "| study | rule | arm | model | params (M) | published (M) | image | fwd GFLOPs/img | runs | steps | "
             "batch | PFLOPs | device-h |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    total = 0.0
    for r in table:
        if "note" in r:
            lines.append(f"| `{r['study']}` | — | | {r['note']} | | | | | | | | | |")
            continue
        total += r["device_hours"]
        pub = "not confirmed" if r["published_params_M"] is None else f"{r['published_params_M']:g}"
        lines.append(f"| `{r['study']}` | {r['rule']} | {r['arm'] or '—'} | `{r['model']}` | {r['params_M']:.3g} | "
                     f"{pub} | {r['image']} | {_num(r['fwd_GFLOPs_per_img'])} | {r['runs']} | {r['steps']:,} | "
                     f"{r['batch']} | {_num(r['PFLOPs'])} | {_num(r['device_hours'])} |")
    lines.append(f"| **total** | | | | | | | | | | | | **{_num(total)}** |")
    sources = sorted({r["published_source"] for r in table if r.get("published_source")})
    if sources:
        lines += ["", "Published parameter counts: " + "; ".join(sources) + "."]
    return "\n".join(lines) + "\n"


# --- the SLURM profile's runtime per rule --------------------------------------------------------

PROFILE_BEGIN = "# BEGIN set-resources (python -m paperzoo.predict --profile; do not edit by hand)"
PROFILE_END = "# END set-resources"


def runtimes(table: list[dict], safety: float = 2.0, overhead_min: float = 15.0) -> dict[str, int]:
    """Minutes per rule for the SLURM profile: the rule's longest job's predicted minutes ×
    ``safety`` + ``overhead_min`` (start-up, data loading, evaluation), rounded up to 15."""
    import math

    per_job: dict[tuple[str, str], float] = {}      # (rule, group) -> minutes of one job
    for r in table:
        if "note" not in r:
            k = (r["rule"], r["group"])
            per_job[k] = per_job.get(k, 0.0) + r["hours_per_job"] * 60
    out: dict[str, float] = {}
    for (rule, _), m in per_job.items():
        out[rule] = max(out.get(rule, 0.0), m)
    return {rule: int(15 * math.ceil((m * safety + overhead_min) / 15)) for rule, m in sorted(out.items())}


def profile_block(mins: dict[str, int], scale: str, tflops: float, safety: float) -> str:
    lines = [PROFILE_BEGIN,
             f"# runtime (minutes) per training rule at scale {scale}: the longest job's predicted time at "
             f"{tflops:g} TFLOP/s x {safety:g} + 15 min,",
             "# rounded up to 15 min. Regenerate after changing a budget: python -m paperzoo.predict --scale "
             f"{scale} --tflops {tflops:g} --profile workflow/profiles/slurm/config.yaml",
             "set-resources:"]
    lines += [f"  {rule}:\n    runtime: {m}" for rule, m in mins.items()]
    lines.append(PROFILE_END)
    return "\n".join(lines) + "\n"


def write_profile(path, block: str) -> bool:
    """Replace the marked block of the profile (appended if absent); True if the file changed."""
    from pathlib import Path

    from paperzoo.engine.io import write_text as atomic_write_text

    text = Path(path).read_text()
    if PROFILE_BEGIN in text:
        head, rest = text.split(PROFILE_BEGIN, 1)
        if PROFILE_END not in rest:
            raise ValueError(f"{path}: {PROFILE_BEGIN!r} without {PROFILE_END!r}: fix the file by hand")
        tail = rest.split(PROFILE_END, 1)[1].lstrip("\n")
        new = head + block + tail
    else:
        new = text.rstrip("\n") + "\n" + block
    if new != text:
        atomic_write_text(path, new)
    return new != text


# --- validation at an embedded scale ---------------------------------------------------------------

def validate(table: list[dict], ledger, peak_gflops: float | None) -> list[dict]:
    """Per planned rule with jobs in ``ledger`` (cost_jobs.csv): predicted TFLOPs per Snakemake
    job (the rule's planned FLOPs over its planned jobs), the measured mean job seconds, the
    achieved GFLOP/s and its fraction of ``peak_gflops``."""
    import csv

    with open(ledger) as fh:
        led = list(csv.DictReader(fh))
    out = []
    for rule in dict.fromkeys(r["rule"] for r in table if "note" not in r):
        rs = [r for r in table if r.get("rule") == rule]
        flops = sum(r["TFLOPs_per_job"] * 1e12 * r["runs"] for r in rs)
        n_jobs = sum(r["jobs"] for r in rs)
        match = rs[0]["ledger_match"] or (lambda j: True)
        secs = []
        for rec in led:
            if rec["study"] == rs[0]["study"] and rec["rule"] == rs[0]["ledger_rule"] and match(rec["job"]):
                try:
                    secs.append(float(rec["s"]))
                except (TypeError, ValueError):
                    pass
        if not secs or not n_jobs:
            continue
        per_job, mean_s = flops / n_jobs, sum(secs) / len(secs)
        ach = per_job / mean_s / 1e9
        out.append({"rule": rule, "planned_jobs": n_jobs, "measured_jobs": len(secs), "TFLOPs_per_job": per_job / 1e12,
                    "mean_job_s": mean_s, "achieved_gflops": ach,
                    "fraction_of_peak": None if not peak_gflops else ach / peak_gflops})
    return out


def validation_markdown(val: list[dict], peak: float | None) -> str:
    head = ("Predicted FLOPs against the measured jobs (cost ledger): achieved GFLOP/s = predicted FLOPs per job / "
            "mean job wall seconds (start-up, data loading and evaluation included)"
            + (f"; fraction of this machine's 1-thread fp32 GEMM peak ({peak:.1f} GFLOP/s)." if peak else "."))
    lines = [head, "", "| rule | jobs (planned / measured) | predicted TFLOPs/job | mean job s | achieved GFLOP/s |"
             " of peak |", "|---|---|---|---|---|---|"]
    for v in val:
        frac = "—" if v["fraction_of_peak"] is None else f"{100 * v['fraction_of_peak']:.0f} %"
        lines.append(f"| {v['rule']} | {v['planned_jobs']} / {v['measured_jobs']} | {_num(v['TFLOPs_per_job'])} | "
                     f"{v['mean_job_s']:.0f} | {v['achieved_gflops']:.2f} | {frac} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="paper")
    ap.add_argument("--study", action="append", help="only these studies (repeatable)")
    ap.add_argument("--tflops", type=float, default=60.0, help="sustained accelerator TFLOP/s you expect")
    ap.add_argument("--profile", help="rewrite this SLURM profile's set-resources block from the prediction")
    ap.add_argument("--safety", type=float, default=2.0, help="runtime = predicted x safety + 15 min (--profile)")
    ap.add_argument("--validate", metavar="LEDGER", help="cost_jobs.csv of a run at this (embedded) scale")
    ap.add_argument("--peak-gflops", type=float, help="1-thread fp32 GEMM peak (benchmarks/bench_gemm.py)")
    ap.add_argument("--out", help="also write the printed markdown here")
    args = ap.parse_args(argv)
    if args.tflops <= 0:
        ap.error("--tflops must be positive")
    if args.safety < 1:
        ap.error("--safety must be >= 1")
    table = rows(args.scale, args.study, args.tflops)
    text = markdown(table, args.scale, args.tflops)
    if args.validate:
        text += "\n" + validation_markdown(validate(table, args.validate, args.peak_gflops), args.peak_gflops)
    print(text)
    if args.out:
        from paperzoo.engine.io import write_text as atomic_write_text

        atomic_write_text(args.out, text)
    if args.profile:
        changed = write_profile(args.profile, profile_block(runtimes(table, args.safety), args.scale, args.tflops,
                                                            args.safety))
        print(f"{args.profile}: {'updated' if changed else 'already up to date'}")


if __name__ == "__main__":
    main()
