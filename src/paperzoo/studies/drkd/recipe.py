"""DRKD recipe: the ``drkd`` config block → explicit keyword arguments, the detectors and the
distillation kit of a run, the data (train split minus the calibration's held-out tail), and
the deviations every run records (``steps`` wires them into the rules' entry points;
``training`` holds the loss, the evaluation and the diagnostics).

Only the ``*_from_config`` functions read the block.
"""
from __future__ import annotations

KIT_SEED = 3_000_017          # kit init of seed K: KIT_SEED + K (identical for every arm of seed K)
INIT_BATCH_SEED = 50_000      # the init phase draws its batches from seed + this


# --- config → explicit keyword arguments -------------------------------------------------

def arm_from_config(block: dict, arm: str) -> dict:
    """Arm name → ``{"prd", "ird", "ins", "fitnet": bool, "filter": "code" | "none"}``."""
    from .modules import FILTERS

    if arm not in block["arms"]:
        raise KeyError(f"drkd: unknown arm {arm!r}; configured: {sorted(block['arms'])}")
    a = block["arms"][arm] or {}
    unknown = set(a) - {"prd", "ird", "ins", "fitnet", "filter"}
    if unknown:
        raise KeyError(f"drkd.arms.{arm}: unknown key(s) {sorted(unknown)}")
    out = {k: bool(a.get(k, False)) for k in ("prd", "ird", "ins", "fitnet")}
    out["filter"] = str(a.get("filter", "code"))
    if out["filter"] not in FILTERS:
        raise ValueError(f"drkd.arms.{arm}.filter = {out['filter']!r}: expected one of {FILTERS}")
    return out


def opt_from_config(block: dict, part: str) -> dict:
    """``drkd.<part>`` (teacher | student) + ``drkd.train`` → model and optimiser keywords."""
    t, p = block["train"], block[part]
    return {"model": str(p["model"]), "lr": float(p["lr"]), "steps": int(p["steps"]),
            "init_steps": int(p.get("init_steps", 0)), "batch_size": int(t["batch_size"]),
            "weight_decay": float(t["weight_decay"]), "warmup": int(t["warmup"]), "schedule": str(t["schedule"]),
            "clip_grad": float(t["clip_grad"]), "hflip": bool(t.get("hflip", True)),
            "drop_at": [float(x) for x in t.get("drop_at", [0.75, 0.9167])]}


def optim_kwargs(o: dict) -> dict:
    """``engine.train`` keywords shared by teacher, init and arms."""
    return {"lr": o["lr"], "weight_decay": o["weight_decay"], "clip_grad": o["clip_grad"], "schedule": o["schedule"],
            "warmup": o["warmup"], "drop_at": o["drop_at"]}


def detector_from_config(block: dict) -> dict:
    """``drkd.detector`` → ``DenseDetector`` keywords (``layers.dense.dense_kwargs``)."""
    from paperzoo.layers.dense import dense_kwargs

    return dense_kwargs(block["detector"])


def kd_from_config(block: dict) -> dict:
    """``drkd.kd`` → loss form, weights (of every term), RoI pooling and calibration keywords."""
    from .losses import LOSS_FORMS

    k = block["kd"]
    form = str(k["loss_form"])
    if form not in LOSS_FORMS:
        raise ValueError(f"drkd.kd.loss_form = {form!r}: expected one of {LOSS_FORMS}")
    w = k["weights"]
    missing = [t for t in ("prd", "ird", "ins", "fitnet") if t not in w]
    if missing:
        raise KeyError(f"drkd.kd.weights: missing {missing}")
    c = k.get("calibration") or {}
    return {"loss_form": form, "weights": {t: float(w[t]) for t in ("prd", "ird", "ins", "fitnet")},
            "weights_provenance": str(k.get("weights_provenance", "")),
            "roi_levels": int(k.get("roi_levels", 2)), "roi_size": int(k.get("roi_size", 3)),
            "pool_from": str(k.get("pool_from", "own")),
            "holdout_frac": float(c.get("holdout_frac", 0.0)), "calib_batches": int(c.get("batches", 8)),
            "factor": float(c.get("factor", 1.0))}


def holdout_frac_of(block: dict) -> float:
    """``drkd.kd.calibration.holdout_frac``: the train tail no training step reads (the teacher
    and init rules get only ``kd.calibration``, so a change of the weights does not rerun them)."""
    return float((block["kd"].get("calibration") or {}).get("holdout_frac", 0.0))


def eval_from_config(block: dict) -> dict:
    e = block["eval"]
    return {"n_val": int(e["n_val"]), "area_rule": str(e["area_rule"]),
            "abs_areas": tuple(float(a) for a in e["abs_areas"]) if e.get("abs_areas") else None,
            "n_diag": int(e.get("n_diag", 64)), "dataset": str(block["dataset"]),
            "coco_size": int(block.get("coco_size", 1024))}


def init_seed_of(block: dict, seed: int) -> int:
    """The init of seed ``seed``: ``drkd.student.init_seed`` if set (one init for all seeds), else ``seed``."""
    s = block["student"].get("init_seed")
    return seed if s is None else int(s)


def run_arms(block: dict) -> list[str]:
    """The configured arms in table order: the baseline and controls first, then the method."""
    order = ["baseline", "fitnet", "prd", "ird_nofilter", "ird", "drkd"]
    return sorted(block["arms"], key=lambda a: (order.index(a) if a in order else len(order), a))


# --- models ----------------------------------------------------------------------------------

def build_detector(block: dict, part: str, num_classes: int):
    """The teacher or the student (``part``) detector: ``drkd.<part>.model`` (a registered
    pyramid, ``models.PYRAMIDS``) under RetinaNet-lite (``drkd.detector``)."""
    from paperzoo.layers import create_model
    from paperzoo.layers.dense import DenseDetector


    return DenseDetector(create_model(block[part]["model"]), num_classes, **detector_from_config(block))


def build_kit(block: dict, arm: str, channels: int, num_levels: int, seed: int):
    """Arm ``arm``'s ``DistillKit``, initialised from ``KIT_SEED + seed`` (the same weights
    for every arm of seed ``seed``, term by term)."""
    import torch

    from .models import DistillKit

    a, kd = arm_from_config(block, arm), kd_from_config(block)
    state = torch.get_rng_state()
    torch.manual_seed(KIT_SEED + seed)
    try:
        return DistillKit(channels, num_levels, prd=a["prd"], ird=a["ird"], ins=a["ins"], fitnet=a["fitnet"],
                          filter=a["filter"], roi_levels=kd["roi_levels"], roi_size=kd["roi_size"])
    finally:
        torch.set_rng_state(state)


# --- data ------------------------------------------------------------------------------------
# batches: paperzoo.data.sets.StepBatches (step i -> a function of (seed, i) only: every arm of a
# seed sees the same images and flips)


def load_data(data_dir, dataset: str, n_val: int, coco_size: int = 1024):
    """Train and val sets and the normalisation statistics (``data.detection.load_detection``)."""
    from paperzoo.data.detection import load_detection

    return load_detection(data_dir, dataset, n_val, coco_size, study="drkd")


def load_train_only(data_dir, dataset: str, coco_size: int = 1024):
    """The train split and its statistics WITHOUT touching val (the calibration's loader):
    the same ``mean``/``std`` as ``load_data``."""
    if dataset == "coco":
        from paperzoo.data.coco import IMAGENET_MEAN, IMAGENET_STD, SquareCocoSet

        return SquareCocoSet(data_dir, "train2017", coco_size), list(IMAGENET_MEAN), list(IMAGENET_STD)
    from paperzoo.data.shapes import load_shapes

    train_set = load_shapes(data_dir, "train")
    x = train_set.images.float().div(255)
    return train_set, x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).tolist()


def split_train(train_set, holdout_frac: float):
    """(fit, holdout): the first ``1 - holdout_frac`` of the train images (every training step
    uses only these) and the last ``holdout_frac`` (the calibration's, never trained on)."""
    n = len(train_set)
    n_hold = int(round(n * holdout_frac))
    if not 0.0 <= holdout_frac < 1.0 or n - n_hold < 1:
        raise ValueError(f"drkd.kd.calibration.holdout_frac = {holdout_frac}: leaves no training image of {n}")
    if n_hold == 0:
        return train_set, None
    return train_set.subset(range(n - n_hold)), train_set.subset(range(n - n_hold, n))


def image_size_of(ev: dict, train_set) -> int:
    return ev["coco_size"] if ev["dataset"] == "coco" else int(train_set.images.shape[-1])


# --- deviations ------------------------------------------------------------------------------

def deviations(block: dict, scale: str, part: str = "student") -> list[str]:
    """Every recorded difference from the official recipe at this scale (``part``: whose run the
    list describes, teacher | student; the teacher's omits the distillation lines, whose keys
    its rule does not receive)."""
    o, d, t = opt_from_config(block, part), block["detector"], block["teacher"] if part == "teacher" else None
    out = [f"AdamW lr {o['lr']:g}, wd {o['weight_decay']:g}, {o['steps']} steps at batch {o['batch_size']}, "
           f"{o['schedule']} schedule, horizontal flip only (official: the mmdet 2x configs named in the README, "
           "faster_rcnn_r50_fpn_2x_coco / retinanet_r50_fpn_2x_coco: SGD, 24 epochs, 8 GPUs)",
           f"RetinaNet-lite (layers.dense, {d['num_convs']} GN convs per branch) on pyramid P3-P5 for teacher and "
           "student (official: the complete method in Faster R-CNN R50-FPN, P2-P6; the RetinaNet file "
           "single_stage.py has IRD only and does not run as released)"]
    if part == "teacher":
        out.append(f"teacher {t['model']} trained here once (seed {t.get('seed', 0)}, {t['steps']} steps) and shared "
                   "by every seed (official: an mmdet model-zoo Cascade Mask R-CNN X101-32x4d DCN for the two-stage "
                   "student)")
    else:
        kd = kd_from_config(block)
        out += [
            f"IRD / INS on the first {kd['roi_levels']} pyramid levels (P3, P4; released: levels 0 and 1 = P2, P3), "
            f"RoIAlign {kd['roi_size']}x{kd['roi_size']}, PRD on every level with GloRe mid widths C/4 on the first "
            "two and C on the rest (the released rule)",
            ("RoI features of each image pooled from its OWN feature map (the release passes [gt_bboxes[b]] to "
             "roi_align, which pools every image's boxes from the FIRST image of the batch)"
             if kd["pool_from"] == "own" else "RoI features pooled from the first image of the batch (release bug)"),
            (f"loss form '{kd['loss_form']}': " + ("torch.dist (unsquared Frobenius norm) summed over levels and "
                                                   "images, as released" if kd["loss_form"] == "code" else
                                                   "mean squared error averaged over levels (our reading of the "
                                                   "paper; its normalisation is not confirmed)")),
            f"loss weights {kd['weights']} ({kd['weights_provenance'] or 'provenance not recorded'}); released "
            "two-stage weights PRD 1e-3, IRD 4e-3, INS 2.4e-3 were set for 256-channel COCO maps, and the "
            "unsquared norms scale with map size",
            "teacher-side GloRe / relation modules and every adapter trained in the student's optimizer, teacher "
            "detector frozen in eval mode (as released)"]
        if int(block["student"].get("init_steps", 0)):
            out.append(f"student starts from a shared initialisation ({block['student']['init_steps']} steps of plain "
                       "detection training, identical for every arm of a seed)")
    if holdout_frac_of(block) > 0:
        out.append(f"the last {holdout_frac_of(block):.0%} of the train images are held out of every training step "
                   "for the one-off loss-weight calibration")
    if scale != "paper":
        out += [f"procedural {block.get('dataset')} (image size and objects: config data.{block.get('dataset')}) "
                "instead of COCO 2017",
                f"miniature conv-BN-ReLU backbone ({o['model']}) trained from scratch, teacher wider than student "
                "with the same FPN width, instead of ImageNet-pretrained ResNet-50 students and X101 teachers"]
    return out
