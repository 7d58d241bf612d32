"""KD-DETR recipe: the ``kd_detr`` config block → explicit keyword arguments, the models of a
run, the data, and the deviations every run records (``steps`` wires them into the rules'
entry points; ``training`` holds the losses and the evaluation).

Only the ``*_from_config`` functions read the block.
"""
from __future__ import annotations


# --- config → explicit keyword arguments -------------------------------------------------

def arm_from_config(block: dict, arm: str) -> dict:
    """Arm name → ``{"general", "specific", "frw", "naive"}`` booleans."""
    if arm not in block["arms"]:
        raise KeyError(f"kd_detr: unknown arm {arm!r}; configured: {sorted(block['arms'])}")
    a = block["arms"][arm]
    return {k: bool(a.get(k, d)) for k, d in (("general", False), ("specific", False), ("frw", True),
                                               ("naive", False))}


def distils(arm: dict) -> bool:
    """Whether the arm (``arm_from_config``'s flags or its raw config entry) distils from the
    teacher: general points, specific points or the naive matched-logit KD."""
    return bool(arm.get("general") or arm.get("specific") or arm.get("naive"))


INIT_LOADS = ("backbone", "all")


def opt_from_config(block: dict, part: str) -> dict:
    """``kd_detr.<part>`` (teacher | student) + ``kd_detr.train`` → keyword arguments."""
    t, p = block["train"], block[part]
    init_load = str(p.get("init_load", "all"))
    if init_load not in INIT_LOADS:
        raise ValueError(f"kd_detr.{part}.init_load: {init_load!r}; expected one of {INIT_LOADS} (backbone: the "
                         "arms take only the init's backbone weights; all: the whole trained detector)")
    return {"model": str(p["model"]), "lr": float(p["lr"]), "steps": int(p["steps"]),
            "lr_backbone": None if p.get("lr_backbone") is None else float(p["lr_backbone"]),
            "init_steps": int(p.get("init_steps", 0)), "init_load": init_load, "batch_size": int(t["batch_size"]),
            "weight_decay": float(t["weight_decay"]), "clip_grad": float(t["clip_grad"]),
            "warmup": int(t["warmup"]), "schedule": str(t["schedule"]), "drop_at": float(t["drop_at"]),
            "loss_weights": {k: float(v) for k, v in t["loss_weights"].items()},
            "matcher": {k: float(v) for k, v in t["matcher_costs"].items()}}


def load_init(model, checkpoint, how: str) -> int:
    """Start ``model`` (a student) from the init ``checkpoint``: ``how="all"`` loads the whole
    trained detector; ``how="backbone"`` loads only the ``backbone.*`` weights (every one of them,
    strictly) and leaves the transformer, heads and anchors as the seed built them, as the paper's
    student puts an ImageNet-pretrained ResNet under a freshly initialised DAB-DETR. Returns the
    number of tensors loaded."""
    from paperzoo.engine.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)["model"]
    if how == "all":
        model.load_state_dict(state)
        return len(state)
    if how != "backbone":
        raise ValueError(f"kd_detr init_load {how!r}; expected one of {INIT_LOADS}")
    own = {k for k in model.state_dict() if k.startswith("backbone.")}
    got = {k: v for k, v in state.items() if k.startswith("backbone.")}
    if set(got) != own:
        raise ValueError(f"kd_detr init {checkpoint}: its backbone tensors do not match the student's "
                         f"(missing {sorted(own - set(got))[:3]}, unexpected {sorted(set(got) - own)[:3]}); "
                         "was it trained with another student.model?")
    model.load_state_dict(got, strict=False)
    return len(got)


TEACHER_ANCHOR_SEED = 1_000_003   # anchor_seed = offset + seed: teacher and student anchors independent
STUDENT_ANCHOR_SEED = 2_000_003


def anchors_from_config(block: dict) -> dict:
    """``kd_detr.anchors`` → DETRLite anchor keywords. One law for both models' anchor init
    and the general points (official: DAB-DETR's ``nn.Embedding`` N(0, 1) in inverse-sigmoid
    space for both)."""
    a = block.get("anchors") or {}
    init = str(a.get("init", "normal"))
    if init not in ("normal", "grid"):
        raise ValueError(f"kd_detr.anchors.init = {init!r}: expected 'normal' (DAB-DETR's N(mean, std) "
                         "anchors) or 'grid'")

    def four(key, default):
        v = a.get(key, default)
        v = [float(x) for x in v] if isinstance(v, (list, tuple)) else float(v)
        if isinstance(v, list) and len(v) != 4:
            raise ValueError(f"kd_detr.anchors.{key} = {v}: expected one number or 4 (cx, cy, w, h)")
        return v

    return {"anchor_init": init, "anchor_mean": four("mean", 0.0), "anchor_std": four("std", 1.0)}


def build_arm_model(block: dict, part: str, num_classes: int, seed: int):
    """The teacher or a student (``part``) with its anchors drawn from ``anchors_from_config``
    under its own anchor seed (teacher and student anchors are independent draws)."""
    from .models import build_model

    kw = anchors_from_config(block)
    if kw["anchor_init"] == "normal":
        kw["anchor_seed"] = (TEACHER_ANCHOR_SEED if part == "teacher" else STUDENT_ANCHOR_SEED) + seed
    return build_model(block[part]["model"], num_classes, **kw)


def kd_from_config(block: dict) -> dict:
    k, law = block["kd"], anchors_from_config(block)
    nw = k.get("naive_weights", {"cls": 10.0, "bbox": 1.0})
    return {"temperature": float(k["temperature"]), "num_general": int(k["num_general"]),
            "weights": {n: float(k["weights"][n]) for n in ("cls", "bbox", "giou")},
            "naive_weights": {n: float(nw[n]) for n in ("cls", "bbox")},
            # official "sum"; "weight" (KL / sum w) only as a diagnostic (bench_kd_detr_gate --set kd.cls_norm=weight)
            "cls_norm": str(k.get("cls_norm", "sum")),
            "teacher_cache": bool(k.get("teacher_cache", False)),
            "general_mean": law["anchor_mean"], "general_std": law["anchor_std"]}


def eval_from_config(block: dict) -> dict:
    e = block["eval"]
    return {"n_val": int(e["n_val"]), "top_k": int(e["top_k"]), "area_rule": str(e["area_rule"]),
            "n_diag": int(e["n_diag"]), "dataset": str(block["dataset"]), "coco_size": int(block["coco_size"])}


def param_groups(model, o: dict):
    """One group, or the backbone at ``lr_backbone`` (DETR practice: the official student uses
    2e-5 for the ResNet, 2e-4 for the rest) — ``engine.train``'s ``params``."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if o["lr_backbone"] is None:
        return trainable
    bb = {id(p) for p in model.backbone.parameters()}
    return [{"params": [p for p in trainable if id(p) in bb], "lr": o["lr_backbone"]},
            {"params": [p for p in trainable if id(p) not in bb]}]


def optim_kwargs(model, o: dict) -> dict:
    """The optimizer and schedule keywords of ``engine.train`` shared by teacher, init and arms."""
    return {"params": param_groups(model, o), "lr": o["lr"], "weight_decay": o["weight_decay"],
            "clip_grad": o["clip_grad"], "schedule": o["schedule"], "warmup": o["warmup"], "drop_at": o["drop_at"]}


# --- data ----------------------------------------------------------------------------------
# batches: paperzoo.data.sets.StepBatches (step i -> a function of (seed, i) only: every arm of a
# seed sees the same images and flips)

def load_data(data_dir, dataset: str, n_val: int, coco_size: int = 800):
    """Train and val sets and the normalisation statistics (``data.detection.load_detection``:
    shapes variants in memory, COCO squashed to ``coco_size`` ² with ImageNet statistics)."""
    from paperzoo.data.detection import load_detection

    return load_detection(data_dir, dataset, n_val, coco_size, study="kd_detr")


def deviations(o: dict, scale: str, init_steps: int = 0, init_seed: int | None = None,
               dataset: str = "shapes", coco_size: int = 800, block: dict | None = None) -> list[str]:
    """Every recorded difference from the official recipe (``block``: the study config, for
    the model pair, anchor law and teacher sharing)."""
    out = [f"AdamW lr {o['lr']:g}, {o['steps']} steps at batch {o['batch_size']}, {o['schedule']} drop at "
           f"{o['drop_at']:g} (official: lr 2e-4 / backbone 2e-5, 50 epochs, drop at 40, batch 64)",
           f"Hungarian loss weights ce {o['loss_weights']['ce']:g} / L1 {o['loss_weights']['bbox']:g} / GIoU "
           f"{o['loss_weights']['giou']:g} (official DAB-DETR: focal 1 / 5 / 2)"]
    if dataset != "coco":
        out.append("procedural shapes (64 px) instead of COCO 2017; DETR-lite models with a from-scratch CNN "
                   "backbone instead of DAB-DETR R50 / R18 with ImageNet-pretrained ResNets")
    else:
        out.append(f"COCO images squashed to {coco_size}x{coco_size} without padding masks (official: shorter side "
                   "480-800, longer <= 1333, random crops); ResNets not ImageNet-pretrained (offline); "
                   "single-scale DAB-style DETR-lite modules, not the official DAB-DETR code")
    if init_steps:
        shared = "one initialisation shared by every seed" if init_seed is not None else "a per-seed initialisation"
        if o.get("init_load", "all") == "backbone":
            out.append(f"student backbone from {shared} ({init_steps} steps of plain Hungarian training of the whole "
                       "student; only its backbone weights are kept, the transformer, heads and anchors start "
                       "fresh from the run's seed): the miniature stand-in for the paper's ImageNet-pretrained "
                       "ResNet-18 under a randomly initialised DAB-DETR")
        else:
            out.append(f"student starts from {shared} ({init_steps} steps of plain Hungarian training of the whole "
                       "detector, identical for every arm): the miniature stand-in for the paper's "
                       "ImageNet-pretrained student backbone")
    if block is not None:
        if dataset != "coco" and "student" in block:   # the teacher step's block has no student
            t, st = block["teacher"]["model"], block["student"]["model"]
            out.append(f"teacher {t} / student {st}: the student keeps the teacher's transformer (d_model, "
                       "encoder and decoder depth, FFN, 16 queries) and halves the backbone's width, the miniature "
                       "analogue of the official R50 -> R18 pair; both are DETR-lite, trained here")
        law = anchors_from_config(block)
        if law["anchor_init"] == "normal" and (law["anchor_mean"] != 0.0 or law["anchor_std"] != 1.0):
            out.append(f"anchor law N({law['anchor_mean']}, {law['anchor_std']}) in inverse-sigmoid space for both "
                       "models' anchors and the general points (official: N(0, 1) for both)")
        elif law["anchor_init"] == "grid":
            out.append("models' anchors start on a fixed grid while general points are N(mean, std) draws: the "
                       "general points are then out of the anchors' distribution (official: one N(0, 1) law)")
        out.append(f"the teacher is trained once (seed {block['teacher'].get('seed', 0)}) and shared by every seed; "
                   "seeds vary the student's anchors, transformer initialisation and data order")
        out.append(f"general points per step: {block['kd']['num_general']} for 16 detection queries (official 300 "
                   "for 300, the same 1:1 ratio)")
    return out
