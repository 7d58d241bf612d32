"""Entry points of the DRKD study (called by the Snakemake rules).

    python -m paperzoo.studies.drkd.steps <step> --params P --scale S [options]

``P`` is the study's ``drkd`` config block after the scale overlay (JSON text or file). Only
the ``*_from_config`` functions read it.

The training images are the train split minus its last ``kd.calibration.holdout_frac``
(``fit_split``); that tail is read by ``calibrate`` only, the val split by evaluation only.

Steps (outputs written atomically; training resumable from ``<checkpoint>.partial``):

* ``teacher``   --data-dir D --checkpoint T.pt --out teacher/metrics.json
                The wide teacher (RetinaNet-lite), trained once and shared by every student
                run; COCO metrics and parameter counts.
* ``init``      --seed K --data-dir D --checkpoint init/seedK.pt
                The student initialisation shared by every arm of seed K: ``student.init_steps``
                of plain detection training (0: the untrained, seeded student).
* ``calibrate`` --data-dir D --teacher T.pt --init init/seedK.pt --out calibration.json
                One-off loss-weight calibration on the held-out TRAIN tail (never val): the
                magnitude of every distillation term relative to the detection loss at step 0
                and the weights that put each term at ``factor`` x the detection loss.
* ``student``   --arm A --seed K --data-dir D --teacher T.pt --init init/seedK.pt
                --checkpoint C.pt --out runs/A/seedK/metrics.json [--teacher-metrics teacher/metrics.json]
                ``student.steps`` of arm A: detection loss + the arm's weighted distillation
                terms (``models.DistillKit``); metrics ``AP``, ``AP50``, ``AP75``, ``AP_S/M/L``
                (scaled COCO areas), ``AP_S/M/L_abs`` (absolute areas), ``teacher_AP``,
                ``teacher_AP_S_abs``, the relation diagnostics of the trained teacher-side
                modules (``relation_share``, ``fg_energy_gain``, ``ird_relation_share``:
                ``models.relation_diagnostics``) and the same at their init (``*_init``),
                ``params`` (student detector), ``kit_params`` and ``train_img_per_s``.
* ``figures``   --metrics aggregated.json --outdir DIR
"""
from __future__ import annotations

import time
from pathlib import Path

from paperzoo.engine.cli import parse_step, study_parser
from paperzoo.engine.io import read_json, write_json
from paperzoo.engine.metrics import run_meta, write_run_metrics
from paperzoo.engine.seeding import seed_everything

STUDY = "drkd"
PACKAGES = ("numpy", "torch", "torchvision", "pycocotools", "faster_coco_eval")
COCO_KEYS = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "AP_S_abs", "AP_M_abs", "AP_L_abs")
KIT_SEED = 3_000_017          # kit init of seed K: KIT_SEED + K (identical for every arm of seed K)
FILTER_SEED = 4_000_037       # random relation filter of step i: a function of (seed, i) only
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


def _load_frozen(block: dict, num_classes: int, checkpoint):
    """The trained teacher, in eval mode, every parameter frozen."""
    from paperzoo.engine.train import load_trained

    m = build_detector(block, "teacher", num_classes)
    load_trained(m, checkpoint)
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _n(m) -> int:
    return sum(p.numel() for p in m.parameters())


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


# --- losses and evaluation -------------------------------------------------------------------

def make_loss_fn(image_size: int, *, teacher=None, kd: dict | None = None, seed: int = 0):
    """``loss_fn(model, (images, targets, step))`` → (loss, parts).

    ``model``: a ``models.DistillStudent``. The detection loss (focal + box) of the student,
    plus, for every active term of its kit, ``w_term * term`` with the raw term logged as
    ``loss_kd_<term>``. The teacher's pyramid is computed under ``no_grad`` on the frozen,
    eval-mode teacher; GT boxes of the batch feed IRD / INS; the random relation filter of
    step i is drawn from a generator seeded by (seed, i)."""
    import torch

    from paperzoo.layers.dense import targets_to_xyxy

    from .models import pyramid

    def loss_fn(model, batch):
        images, targets, step = batch
        tgt = targets_to_xyxy(targets, image_size)
        out = model.student(images, tgt, return_features=True)
        parts = {"classification": out["classification"], "bbox_regression": out["bbox_regression"]}
        loss = parts["classification"] + parts["bbox_regression"]
        kit = model.kit
        if not kit.active:
            return loss, parts
        with torch.no_grad():
            t_feats = pyramid(teacher, images)
        g = torch.Generator().manual_seed(FILTER_SEED + seed * 1_000_003 + int(step))
        terms = kit.terms(list(out["features"].values()), t_feats, [t["boxes"] for t in tgt],
                          strides=model.student.features.strides, loss_form=kd["loss_form"],
                          pool_from=kd["pool_from"], generator=g)
        for name, v in terms.items():
            parts[f"loss_kd_{name}"] = v
            loss = loss + kd["weights"][name] * v
        return loss, parts

    return loss_fn


def evaluate(model, val, mean, std, *, area_rule: str, abs_areas, batch_size: int = 50) -> dict[str, float]:
    """COCO bbox metrics (``COCO_KEYS`` that are finite) of the detector ``model`` on ``val``
    (``engine.coco_eval.evaluate_model``)."""
    from paperzoo.engine.coco_eval import evaluate_model

    return evaluate_model(model, val, mean, std, keys=COCO_KEYS, area_rule=area_rule, abs_areas=abs_areas,
                          batch_size=batch_size)


def diagnostics(kit, teacher, val, mean, std, *, n_diag: int, image_size: int, seed: int = 0,
                pool_from: str = "own") -> dict[str, float]:
    """``models.relation_diagnostics`` on the first ``n_diag`` val images (teacher pyramid)."""
    import torch

    from paperzoo.data.sets import to_float
    from paperzoo.layers.dense import targets_to_xyxy

    from .models import pyramid, relation_diagnostics

    if not (kit.flags["prd"] or kit.flags["ird"]) or n_diag <= 0:
        return {}
    n = min(n_diag, len(val))
    dev = next(teacher.parameters()).device
    with torch.no_grad():
        t_feats = pyramid(teacher, to_float(val.images[:n], mean, std).to(dev))
    boxes = [t["boxes"].to(dev) for t in targets_to_xyxy(val.targets[:n], image_size)]
    return relation_diagnostics(kit, t_feats, boxes, teacher.features.strides, pool_from=pool_from, seed=seed)


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


# --- steps ---------------------------------------------------------------------------------

def _setup(block: dict, data_dir, seed: int, threads: int):

    seed_everything(seed, threads)   # also sets torch's thread count
    ev = eval_from_config(block)
    train_set, val, mean, std = load_data(data_dir, ev["dataset"], ev["n_val"], ev["coco_size"])
    fit, _ = split_train(train_set, holdout_frac_of(block))
    return ev, fit, val, mean, std, image_size_of(ev, train_set)


def _device():
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else None   # paper scale: the GPU


def run_teacher(block: dict, *, scale: str, data_dir, checkpoint, out, threads: int = 1,
                progress: bool = True) -> dict:
    """Train the teacher once (seed ``drkd.teacher.seed``) and write its COCO metrics."""
    import torch

    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.train import load_trained, train
    from paperzoo.layers.dense import detection_loss_fn

    t0 = time.perf_counter()
    seed = int(block["teacher"].get("seed", 0))
    ev, fit, val, mean, std, size = _setup(block, data_dir, seed, threads)
    o = opt_from_config(block, "teacher")
    torch.manual_seed(seed)
    model = build_detector(block, "teacher", fit.num_classes)
    device = _device()
    t1 = time.perf_counter()
    train(model, detection_loss_fn(size), StepBatches(fit, o["batch_size"], seed, mean, std, hflip=o["hflip"]),
          steps=o["steps"], final=checkpoint, device=device, **optim_kwargs(o), progress=progress,
          desc="drkd teacher")
    t_train = time.perf_counter() - t1
    history = load_trained(model, checkpoint)
    metrics = evaluate(model, val, mean, std, area_rule=ev["area_rule"], abs_areas=ev["abs_areas"])
    metrics.update(params=_n(model), params_features=_n(model.features))
    metrics["train_img_per_s"] = o["steps"] * o["batch_size"] / t_train
    meta = run_meta(t0, threads, PACKAGES, model=o["model"], steps=o["steps"], train_s=round(t_train, 3),
                    final_loss=history[-1]["loss"] if history else None, n_train=len(fit), n_val=len(val),
                    image_size=size, device=str(device or "cpu"), deviations=deviations(block, scale, "teacher"))
    write_run_metrics(out, study=STUDY, scale=scale, arm="teacher", seed=seed, metrics=metrics, meta=meta)
    return metrics


def init_seed_of(block: dict, seed: int) -> int:
    """The init of seed ``seed``: ``drkd.student.init_seed`` if set (one init for all seeds), else ``seed``."""
    s = block["student"].get("init_seed")
    return seed if s is None else int(s)


def run_init(block: dict, *, scale: str, seed: int, data_dir, checkpoint, threads: int = 1,
             progress: bool = True) -> None:
    """The student initialisation of seed ``seed`` (``init_seed_of``): ``init_steps`` of
    detection-only training at constant lr after warmup, or the seeded untrained student."""
    import torch

    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.checkpoint import save_checkpoint
    from paperzoo.engine.train import train
    from paperzoo.layers.dense import detection_loss_fn

    s = init_seed_of(block, seed)
    _, fit, _, mean, std, size = _setup(block, data_dir, s, threads)
    o = opt_from_config(block, "student")
    torch.manual_seed(s)
    model = build_detector(block, "student", fit.num_classes)
    if o["init_steps"] == 0:
        save_checkpoint(checkpoint, {"model": model.state_dict(), "ema": None, "history": [], "steps": 0})
        return
    train(model, detection_loss_fn(size), StepBatches(fit, o["batch_size"], s + INIT_BATCH_SEED, mean, std,
                                                   hflip=o["hflip"]),
          steps=o["init_steps"], final=checkpoint, device=_device(), **{**optim_kwargs(o), "schedule": "constant"},
          progress=progress, desc=f"drkd init seed{s}")


def run_calibrate(block: dict, *, scale: str, data_dir, teacher_checkpoint, init, out, seed: int = 0,
                  threads: int = 1) -> dict:
    """One-off weight calibration on the held-out train tail (never the val split).

    With the frozen teacher, the init student of ``seed`` and a kit with all four terms
    (code filter, seeded like the arms'), over the first ``kd.calibration.batches`` batches of
    ``train.batch_size`` held-out images (no flip, step-0 modes: student and kit in train
    mode, no update): the mean detection loss L_det and every raw term T_k. Proposed weight
    w_k = factor * L_det / T_k, so that w_k T_k = factor * L_det at step 0. Writes the
    weights, the magnitudes, the ratio the released weights would give, and provenance."""
    import torch

    from paperzoo.data.sets import to_float
    from paperzoo.engine.train import load_trained
    from paperzoo.layers.dense import targets_to_xyxy

    from .losses import WEIGHTS_TWO_STAGE
    from .models import check_pair, pyramid

    t0 = time.perf_counter()
    seed_everything(seed, threads)   # also sets torch's thread count
    ev, kd, o = eval_from_config(block), kd_from_config(block), opt_from_config(block, "student")
    train_set, mean, std = load_train_only(data_dir, ev["dataset"], ev["coco_size"])
    size = image_size_of(ev, train_set)
    fit, hold = split_train(train_set, kd["holdout_frac"])
    if hold is None:
        raise SystemExit("drkd calibrate: drkd.kd.calibration.holdout_frac is 0: no held-out train images "
                         "(the calibration never reads the val split)")
    teacher = _load_frozen(block, train_set.num_classes, teacher_checkpoint)
    student = build_detector(block, "student", train_set.num_classes)
    load_trained(student, init)
    check_pair(teacher, student)
    full = {**block, "arms": {**block["arms"], "_calibration": {"prd": True, "ird": True, "ins": True,
                                                                 "fitnet": True, "filter": "code"}}}
    kit = build_kit(full, "_calibration", student.features.out_channels, len(student.features.strides), seed)
    student.train()
    kit.train()
    bs = o["batch_size"]
    n_batches = min(kd["calib_batches"], len(hold) // bs) or 1
    det, terms = [], {k: [] for k in ("prd", "ird", "ins", "fitnet")}
    with torch.no_grad():
        for b in range(n_batches):
            idx = torch.arange(b * bs, min((b + 1) * bs, len(hold)))
            images = to_float(hold.images[idx], mean, std)
            tgt = targets_to_xyxy([{"labels": hold.targets[int(i)]["labels"], "boxes": hold.targets[int(i)]["boxes"]}
                                   for i in idx], size)
            parts = student(images, tgt, return_features=True)
            det.append(float(parts["classification"] + parts["bbox_regression"]))
            g = torch.Generator().manual_seed(FILTER_SEED + seed * 1_000_003 + b)
            vals = kit.terms(list(parts["features"].values()), pyramid(teacher, images), [t["boxes"] for t in tgt],
                             strides=student.features.strides, loss_form=kd["loss_form"], pool_from=kd["pool_from"],
                             generator=g)
            for k, v in vals.items():
                terms[k].append(float(v))
    l_det = sum(det) / len(det)
    mag = {k: sum(v) / len(v) for k, v in terms.items()}
    factor = kd["factor"]

    def sig3(x: float) -> float:
        return float(f"{x:.3g}")

    weights = {k: sig3(factor * l_det / v) if v > 0 else 0.0 for k, v in mag.items()}
    result = {
        "weights": weights, "factor": factor, "loss_form": kd["loss_form"], "det_loss": l_det, "terms": mag,
        "ratio_to_det": {k: v / l_det for k, v in mag.items()},
        "released_weights": dict(WEIGHTS_TWO_STAGE),
        "ratio_to_det_at_released_weights": {k: WEIGHTS_TWO_STAGE[k] * mag[k] / l_det for k in WEIGHTS_TWO_STAGE},
        "holdout": {"split": "train", "first_index": len(fit), "n_images": len(hold),
                    "n_used": min(n_batches * bs, len(hold)), "batches": n_batches, "batch_size": bs},
        "provenance": (f"drkd calibrate: step-0 magnitudes of each term relative to the detection loss, teacher "
                       f"{block['teacher']['model']} + init student {block['student']['model']} (seed {seed}), "
                       f"{n_batches} batch(es) of {bs} held-out TRAIN images (indices {len(fit)}..{len(train_set) - 1}"
                       f", never trained on); w = {factor:g} x L_det / term; val split never read"),
        "meta": run_meta(t0, threads, PACKAGES, scale=scale),
    }
    write_json(out, result)
    return result


def run_student(block: dict, *, scale: str, arm: str, seed: int, data_dir, teacher_checkpoint, init, checkpoint,
                out, teacher_metrics=None, threads: int = 1, progress: bool = True) -> dict:
    """Train arm ``arm`` of seed ``seed`` from its seed's init, evaluate, write metrics.
    ``teacher_metrics``: the teacher's metrics.json (its AP and AP_S_abs are copied as
    ``teacher_AP`` / ``teacher_AP_S_abs`` for the teacher-beats-student precondition)."""
    import torch

    from paperzoo.data.sets import StepBatches
    from paperzoo.engine.train import load_trained, train

    from .models import DistillStudent, check_pair

    t0 = time.perf_counter()
    a = arm_from_config(block, arm)
    ev, fit, val, mean, std, size = _setup(block, data_dir, seed, threads)
    o, kd = opt_from_config(block, "student"), kd_from_config(block)
    torch.manual_seed(init_seed_of(block, seed))
    student = build_detector(block, "student", fit.num_classes)
    if init is not None:
        load_trained(student, init)
    teacher = _load_frozen(block, fit.num_classes, teacher_checkpoint)
    check_pair(teacher, student)
    kit = build_kit(block, arm, student.features.out_channels, len(student.features.strides), seed)
    model = DistillStudent(student, kit)
    diag_init = {f"{k}_init": v for k, v in diagnostics(kit, teacher, val, mean, std, n_diag=ev["n_diag"],
                                                         image_size=size, seed=seed, pool_from=kd["pool_from"]).items()}
    device = _device()
    if device is not None:
        teacher.to(device)
    loss_fn = make_loss_fn(size, teacher=teacher, kd=kd, seed=seed)
    t1 = time.perf_counter()
    train(model, loss_fn, StepBatches(fit, o["batch_size"], seed, mean, std, hflip=o["hflip"]), steps=o["steps"],
          final=checkpoint, device=device, **optim_kwargs(o), progress=progress, desc=f"drkd {arm} seed{seed}")
    t_train = time.perf_counter() - t1
    history = load_trained(model, checkpoint)
    metrics = evaluate(model.student, val, mean, std, area_rule=ev["area_rule"], abs_areas=ev["abs_areas"])
    metrics.update(diagnostics(kit, teacher, val, mean, std, n_diag=ev["n_diag"], image_size=size, seed=seed,
                               pool_from=kd["pool_from"]))
    metrics.update(diag_init)
    if teacher_metrics is not None:
        tm = read_json(teacher_metrics)["metrics"]
        metrics.update({f"teacher_{k}": float(tm[k]) for k in ("AP", "AP_S_abs") if k in tm})
    metrics.update(params=_n(model.student), kit_params=_n(kit), train_img_per_s=o["steps"] * o["batch_size"] / t_train)
    final = {k: v for k, v in (history[-1] if history else {}).items() if k.startswith("loss")}
    meta = run_meta(t0, threads, PACKAGES, model=o["model"], teacher=block["teacher"]["model"], arm_flags=a,
                    kd_weights={k: kd["weights"][k] for k in kit.active}, loss_form=kd["loss_form"],
                    weights_provenance=kd["weights_provenance"], steps=o["steps"], init_steps=o["init_steps"],
                    init_seed=init_seed_of(block, seed), train_s=round(t_train, 3), final_losses=final,
                    n_train=len(fit), n_val=len(val), image_size=size, device=str(device or "cpu"),
                    timing_note=(f"GPU {torch.cuda.get_device_name()}" if device is not None else
                                 f"CPU, {threads} thread(s), other cores busy with other jobs"),
                    deviations=deviations(block, scale))
    write_run_metrics(out, study=STUDY, scale=scale, arm=arm, seed=seed, metrics=metrics, meta=meta)
    return metrics


def run_arms(block: dict) -> list[str]:
    """The configured arms in table order: the baseline and controls first, then the method."""
    order = ["baseline", "fitnet", "prd", "ird_nofilter", "ird", "drkd"]
    return sorted(block["arms"], key=lambda a: (order.index(a) if a in order else len(order), a))


def run_figures(block: dict, *, scale: str, metrics, outdir) -> list[Path]:
    from . import figures

    outdir = Path(outdir)
    agg = read_json(metrics)
    baseline = str(block.get("baseline_arm", "baseline"))
    arms = [a for a in run_arms(block) if a in agg["arms"]]
    labels = {a: figures.terms_label(arm_from_config(block, a)) for a in arms}
    return [figures.table_arms(agg, arms, outdir, baseline=baseline, labels=labels),
            figures.fig_ap_per_arm(agg, arms, outdir / "fig_ap_per_arm.png", scale=scale, baseline=baseline),
            figures.fig_delta_vs_baseline(agg, arms, outdir / "fig_delta_vs_baseline.png", baseline=baseline,
                                          scale=scale)]


def main(argv: list[str] | None = None) -> None:
    ap = study_parser(__doc__, ("teacher", "init", "calibrate", "student", "figures"))
    ap.add_argument("--arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--teacher", type=Path, help="teacher checkpoint (calibrate, student)")
    ap.add_argument("--init", type=Path, help="student init checkpoint of the seed (calibrate, student)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--teacher-metrics", type=Path, help="teacher metrics.json (student: teacher_AP)")
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--outdir", type=Path)
    need = {"teacher": ["data_dir", "checkpoint", "out"], "init": ["data_dir", "checkpoint"],
            "calibrate": ["data_dir", "teacher", "init", "out"],
            "student": ["arm", "data_dir", "teacher", "init", "checkpoint", "out"],
            "figures": ["metrics", "outdir"]}
    args, block = parse_step(ap, argv, need)
    if args.step == "teacher":
        run_teacher(block, scale=args.scale, data_dir=args.data_dir, checkpoint=args.checkpoint, out=args.out,
                    threads=args.threads)
    elif args.step == "init":
        run_init(block, scale=args.scale, seed=args.seed, data_dir=args.data_dir, checkpoint=args.checkpoint,
                 threads=args.threads)
    elif args.step == "calibrate":
        run_calibrate(block, scale=args.scale, data_dir=args.data_dir, teacher_checkpoint=args.teacher,
                      init=args.init, out=args.out, seed=args.seed, threads=args.threads)
    elif args.step == "student":
        run_student(block, scale=args.scale, arm=args.arm, seed=args.seed, data_dir=args.data_dir,
                    teacher_checkpoint=args.teacher, init=args.init, checkpoint=args.checkpoint, out=args.out,
                    teacher_metrics=args.teacher_metrics, threads=args.threads)
    else:
        run_figures(block, scale=args.scale, metrics=args.metrics, outdir=args.outdir)


if __name__ == "__main__":
    main()
