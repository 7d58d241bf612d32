"""Entry points of the APIS study (called by the Snakemake rules).

    python -m paperzoo.studies.apis.steps <step> --params P --scale S [options]

``P`` is the ``apis`` config block after the scale overlay (JSON text or file). Only the
``*_from_config`` functions (``recipe``) read it. The official loop (chufengt/APIS
``scripts/entropy.py``, ``random.py``) on a box-conditioned mask head (``models``):

* ``p0``        --seed K --data-dir D --checkpoint P0.pt --out runs/p0/seedK/metrics.json
                P0: one random point per training instance (the first of the 10 PointSup points
                drawn for seed K), trained from seed K's init; shared by every strategy.
* ``active``    --strategy A --seed K --data-dir D --p0 P0.pt --checkpoint C.pt --out M.json
                rounds r = 1..R from P0: the previous round's model picks one more point per
                instance (strategy A; ``random`` takes PointSup point r + 1, so the sets are
                nested), the oracle labels it from the ground-truth mask, and the model is
                fine-tuned from the previous round's weights on all points so far.
* ``fullmask``  --seed K --data-dir D --checkpoint F.pt --out M.json
                the reference: the same head trained on the full masks for the same total steps.
* ``figures``   --metrics aggregated.json --data-dir D --checkpoint-dir CK --outdir DIR

Metrics per number of points n = 1..R + 1 per instance: ``miou_p<n>`` (mean mask IoU over the
val instances, the primary metric) and ``segmAP_p<n>`` (COCO segm AP with the ground-truth
boxes and classes: mask quality only, NOT the detector AP of the paper), plus per round the
selection's ``repeat_rate_p<n>`` (new point on an already-labelled pixel), ``fg_rate_p<n>``
(new point labelled foreground) and ``sel_s_p<n>``.
"""
from __future__ import annotations

import time
from pathlib import Path

from paperzoo.engine.cli import parse_step, study_parser
from paperzoo.engine.io import read_json
from paperzoo.engine.metrics import run_meta, write_run_metrics
from paperzoo.engine.seeding import seed_everything

from .instances import load_instances
from .recipe import (  # noqa: F401  (re-exported: the recipe is part of this module's interface)
    STRATEGIES,
    check_strategy,
    deviations,
    fullmask_from_config,
    head_from_config,
    p0_from_config,
    rounds_from_config,
    selection_from_config,
)

STUDY = "apis"
PACKAGES = ("numpy", "torch", "torchvision", "pycocotools", "faster_coco_eval")
POINT_SEED = 12_345          # PointSup's point-drawing seed (detectron2 prepare_..._without_masks.py), + the run's seed
ROUND_SEED = 100             # round r's batches come from seed * 1000 + ROUND_SEED + r (the same for every strategy)
TIE_SEED = 9_001             # argmax ties of round r: seed * 1000 + TIE_SEED + r


# --- data, model -----------------------------------------------------------------------------
# the train / val instances: instances.load_instances (the figures read them too)

def build_head(block: dict, seed: int):
    import torch

    from paperzoo.layers import create_model

    torch.manual_seed(seed)
    return create_model(head_from_config(block)["model"])


def random_points(block: dict, train, seed: int):
    """The 10 (``points_per_instance``) PointSup points of every train instance for ``seed``."""
    import torch

    from .models import draw_points

    return draw_points(train, int(block["points_per_instance"]), torch.Generator().manual_seed(POINT_SEED + seed))


# --- training ------------------------------------------------------------------------------------

def crop_batches(crops, targets, batch_size: int, seed: int, mirror, labels=None):
    """Step i → (crops, targets[, labels]) of ``batch_size`` instances drawn with replacement by
    a generator of (seed, i) only (every strategy of a round sees the same instances), each
    mirrored with probability 1/2: the image channels flipped, the target by ``mirror``."""
    import torch

    from paperzoo.engine.train import step_generator

    def batch(i: int):
        g = step_generator(seed, i)
        idx = torch.randint(len(crops), (batch_size,), generator=g)
        flip = torch.rand(batch_size, generator=g) < 0.5
        x, t = crops[idx].clone(), targets[idx].clone()
        x[flip, :3] = x[flip, :3].flip(-1)
        t[flip] = mirror(t[flip])
        return (x, t) if labels is None else (x, t, labels[idx])

    return batch


def mirror_points(grid):
    """Grid coordinates (..., n, 2) of the horizontally mirrored crop: x → −x."""
    return grid * grid.new_tensor([-1.0, 1.0])


def mirror_masks(masks):
    return masks.flip(-1)


def point_batches(crops, grids, labels, batch_size: int, seed: int):
    """:func:`crop_batches` of the labelled points (grid coordinates mirrored with the crop)."""
    return crop_batches(crops, grids, batch_size, seed, mirror_points, labels)


def point_loss_fn(model, batch):
    from .models import point_loss

    x, grid, lab = batch
    loss = point_loss(model(x), grid, lab)
    return loss, {"loss_point": loss}


def mask_loss_fn(model, batch):
    import torch.nn.functional as F

    x, target = batch
    loss = F.binary_cross_entropy_with_logits(model(x), target)
    return loss, {"loss_mask": loss}


def train_crops(block: dict, inst):
    from .models import crop_boxes, extract_crops

    h = head_from_config(block)
    regions = crop_boxes(inst.boxes, h["expand"])
    return extract_crops(inst.images, inst.img_index, regions, h["size"]), regions


def fit(model, loss_fn, batches, cfg: dict, *, final=None, desc: str, progress: bool) -> list[dict]:
    from paperzoo.engine.train import train

    return train(model, loss_fn, batches, steps=cfg["steps"], final=final, lr=cfg["lr"],
                 weight_decay=cfg["weight_decay"], clip_grad=0.0, schedule="step", drop_at=cfg["drop_at"],
                 progress=progress, desc=desc)


# --- evaluation -----------------------------------------------------------------------------------

def evaluate_masks(model, val, block: dict) -> dict:
    """``miou`` (mean IoU of the thresholded mask, zeroed outside the GT box, with the GT
    visible mask, over the val instances) and ``segmAP``/``segmAP50`` (COCO segm evaluation with
    the GT boxes and classes; score = the mean foreground probability of the predicted mask)."""
    import numpy as np
    import torch
    from pycocotools import mask as mask_utils

    from paperzoo.engine.coco_eval import evaluate

    from .models import box_probabilities, gt_on_grid

    h = head_from_config(block)
    thr = float(block["eval"]["threshold"])
    model.eval()
    with torch.no_grad():
        probs, xy, inside = box_probabilities(model, val, size=h["size"], expand=h["expand"], shifts=[(0.0, 0.0)],
                                              hflip=False)
    p = probs[0]
    pred, gt = (p > thr) & inside, gt_on_grid(val, xy, inside)
    inter = (pred & gt).flatten(1).sum(1).float()
    union = (pred | gt).flatten(1).sum(1).float().clamp_min(1)
    iou = inter / union
    m, (hh, ww) = len(val), val.masks.shape[-2:]
    full = torch.zeros(m, hh, ww, dtype=torch.uint8)
    mi = torch.arange(m)[:, None, None].expand_as(pred)
    full[mi[pred], xy[..., 1][pred], xy[..., 0][pred]] = 1
    rles = mask_utils.encode(np.asfortranarray(full.permute(1, 2, 0).numpy()))
    n_pix = pred.flatten(1).sum(1)
    score = torch.where(n_pix > 0, (p * pred).flatten(1).sum(1) / n_pix.clamp_min(1),
                        (p * inside).flatten(1).sum(1) / inside.flatten(1).sum(1).clamp_min(1))
    results = [{"image_id": val.image_ids[int(val.img_index[i])], "category_id": val.category_ids[int(val.labels[i])],
                "segmentation": {"size": r["size"], "counts": r["counts"].decode()}, "score": float(score[i])}
               for i, r in enumerate(rles)]
    coco = evaluate(val.coco_path, results, iou_type="segm", img_ids=sorted(set(val.image_ids)))
    return {"miou": float(iou.mean()), "segmAP": coco["AP"], "segmAP50": coco["AP50"]}


# --- steps -----------------------------------------------------------------------------------------

def run_p0(block: dict, *, scale: str, seed: int, data_dir, checkpoint, out, threads: int = 1,
           progress: bool = True) -> dict:
    """P0: one random point per instance, from seed ``seed``'s init."""
    from .models import to_grid

    t0 = time.perf_counter()
    seed_everything(seed, threads)
    train_inst, val = load_instances(block, data_dir)
    rand_xy, rand_lab = random_points(block, train_inst, seed)
    crops, regions = train_crops(block, train_inst)
    o = p0_from_config(block)
    model = build_head(block, seed)
    t1 = time.perf_counter()
    batches = point_batches(crops, to_grid(rand_xy[:, :1], regions), rand_lab[:, :1], o["batch_size"],
                            seed * 1000 + ROUND_SEED)
    fit(model, point_loss_fn, batches, o, final=checkpoint, desc=f"apis p0 seed{seed}", progress=progress)
    t_train = time.perf_counter() - t1
    metrics = {f"{k}_p1": v for k, v in evaluate_masks(model, val, block).items()}
    metrics |= {"fg_rate_p1": float(rand_lab[:, 0].mean()), "params": sum(p.numel() for p in model.parameters()),
                "n_train_instances": len(train_inst), "n_val_instances": len(val),
                "train_ms_per_step": 1000 * t_train / o["steps"]}
    meta = run_meta(t0, threads, PACKAGES, steps=o["steps"], train_s=round(t_train, 3),
                    deviations=deviations(block, scale))
    write_run_metrics(out, study=STUDY, scale=scale, arm="p0", seed=seed, metrics=metrics, meta=meta)
    return metrics


def run_active(block: dict, *, scale: str, strategy: str, seed: int, data_dir, p0, checkpoint, out,
               threads: int = 1, progress: bool = True) -> dict:
    """Rounds 1..R of ``strategy`` from seed ``seed``'s P0. Resumable round by round
    (``<checkpoint>.partial``: weights, points and metrics after the last finished round)."""
    import torch

    from paperzoo.engine.checkpoint import finish, run_resumable, save_checkpoint
    from paperzoo.engine.metrics import params_digest
    from paperzoo.engine.train import load_trained

    from .models import box_probabilities, gt_on_grid, mask_at, score_pixels, select_points, to_grid

    check_strategy(strategy)
    t0 = time.perf_counter()
    seed_everything(seed, threads)
    train_inst, val = load_instances(block, data_dir)
    rand_xy, rand_lab = random_points(block, train_inst, seed)
    crops, regions = train_crops(block, train_inst)
    h, sel, r = head_from_config(block), selection_from_config(block), rounds_from_config(block)
    model = build_head(block, seed)
    load_trained(model, p0)
    state = {"xy": rand_xy[:, :1].clone(), "lab": rand_lab[:, :1].clone(), "metrics": {}, "train_s": 0.0}
    state["metrics"] |= {f"{k}_p1": v for k, v in evaluate_masks(model, val, block).items()}

    def one_round(i: int) -> None:
        rnd, n = i + 1, i + 2                       # round rnd brings every instance to n points
        ts = time.perf_counter()
        if strategy == "random":
            new = rand_xy[:, rnd]
        else:
            model.eval()
            with torch.no_grad():
                probs, xy, inside = box_probabilities(model, train_inst, size=h["size"], expand=h["expand"],
                                                      shifts=sel["shifts"], hflip=sel["hflip"])
            gt = gt_on_grid(train_inst, xy, inside) if strategy == "oracle" else None
            new = select_points(score_pixels(strategy, probs, gt), xy, inside,
                                torch.Generator().manual_seed(seed * 1000 + TIE_SEED + rnd))
        sel_s = time.perf_counter() - ts
        lab = mask_at(train_inst.masks, new[:, None])[:, 0]
        repeat = (new[:, None, :] == state["xy"]).all(-1).any(-1).float().mean()
        state["xy"] = torch.cat([state["xy"], new[:, None]], 1)
        state["lab"] = torch.cat([state["lab"], lab[:, None]], 1)
        t1 = time.perf_counter()
        fit(model, point_loss_fn, point_batches(crops, to_grid(state["xy"], regions), state["lab"], r["batch_size"],
                                                seed * 1000 + ROUND_SEED + rnd),
            r, final=None, desc=f"apis {strategy} seed{seed} round {rnd}", progress=False)
        state["train_s"] += time.perf_counter() - t1
        state["metrics"] |= {f"{k}_p{n}": v for k, v in evaluate_masks(model, val, block).items()}
        state["metrics"] |= {f"repeat_rate_p{n}": float(repeat), f"fg_rate_p{n}": float(lab.mean()),
                             f"sel_s_p{n}": sel_s}

    def get_state() -> dict:
        return {"model": model.state_dict(), **state, "rng": torch.get_rng_state()}

    def set_state(s: dict) -> None:
        model.load_state_dict(s["model"])
        torch.set_rng_state(s["rng"])
        state.update({k: s[k] for k in ("xy", "lab", "metrics", "train_s")})

    fingerprint = {"params_sha256": params_digest(), "strategy": strategy, "seed": seed, "rounds": r["n"]}
    run_resumable(r["n"], one_round, get_state, set_state, checkpoint, every_s=0.0,
                  desc=f"apis {strategy} seed{seed} rounds", progress=progress, fingerprint=fingerprint)
    save_checkpoint(checkpoint, {"model": model.state_dict(), "points_xy": state["xy"], "points_label": state["lab"],
                                 "history": []})
    finish(checkpoint)
    metrics = dict(state["metrics"])
    last = r["n"] + 1
    metrics["miou_last"] = metrics[f"miou_p{last}"]
    metrics["miou_rise_p2_last"] = metrics[f"miou_p{last}"] - metrics["miou_p2"]
    metrics["repeat_rate"] = sum(metrics[f"repeat_rate_p{n}"] for n in range(2, last + 1)) / r["n"]
    metrics["train_ms_per_step"] = 1000 * state["train_s"] / (r["n"] * r["steps"])
    meta = run_meta(t0, threads, PACKAGES, strategy=strategy, rounds=r["n"], steps_per_round=r["steps"],
                    n_views=len(sel["shifts"]) * (2 if sel["hflip"] else 1), train_s=round(state["train_s"], 3),
                    deviations=deviations(block, scale))
    write_run_metrics(out, study=STUDY, scale=scale, arm=strategy, seed=seed, metrics=metrics, meta=meta)
    return metrics


def run_fullmask(block: dict, *, scale: str, seed: int, data_dir, checkpoint, out, threads: int = 1,
                 progress: bool = True) -> dict:
    """The full-mask reference: dense BCE on the RoIAlign-ed ground-truth masks (thresholded
    at 0.5, as Mask R-CNN's mask targets) for P0 + every round's steps, from seed ``seed``'s init."""
    import torch
    from torchvision.ops import roi_align

    t0 = time.perf_counter()
    seed_everything(seed, threads)
    train_inst, val = load_instances(block, data_dir)
    crops, regions = train_crops(block, train_inst)
    size = head_from_config(block)["size"]
    rois = torch.cat([torch.arange(len(train_inst), dtype=torch.float32)[:, None], regions], 1)
    targets = (roi_align(train_inst.masks[:, None].float(), rois, (size, size), 1.0, 2, aligned=True) >= 0.5).float()
    o = fullmask_from_config(block)
    model = build_head(block, seed)
    batches = crop_batches(crops, targets, o["batch_size"], seed * 1000 + ROUND_SEED, mirror_masks)
    t1 = time.perf_counter()
    fit(model, mask_loss_fn, batches, o, final=checkpoint, desc=f"apis fullmask seed{seed}", progress=progress)
    t_train = time.perf_counter() - t1
    metrics = evaluate_masks(model, val, block)
    metrics["train_ms_per_step"] = 1000 * t_train / o["steps"]
    meta = run_meta(t0, threads, PACKAGES, steps=o["steps"], train_s=round(t_train, 3),
                    deviations=deviations(block, scale))
    write_run_metrics(out, study=STUDY, scale=scale, arm="fullmask", seed=seed, metrics=metrics, meta=meta)
    return metrics


def run_figures(block: dict, *, scale: str, metrics, outdir, data_dir=None, checkpoint_dir=None) -> list[Path]:
    """Every figure; the picture of the selected points needs ``data_dir`` and ``checkpoint_dir``
    (``checkpoints/<strategy>/seed0/model.pt`` below it)."""
    from . import figures

    return figures.make_all(block, read_json(metrics), Path(outdir), scale=scale, data_dir=data_dir,
                            ckpt_dir=checkpoint_dir)


def main(argv: list[str] | None = None) -> None:
    ap = study_parser(__doc__, ("p0", "active", "fullmask", "figures"))
    ap.add_argument("--strategy", choices=STRATEGIES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--p0", type=Path, help="the seed's P0 checkpoint (active)")
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--metrics", type=Path)
    ap.add_argument("--outdir", type=Path)
    ap.add_argument("--checkpoint-dir", type=Path, help="checkpoints/ of the study (figures: seed 0's points)")
    need = {"p0": ["data_dir", "checkpoint", "out"], "active": ["strategy", "data_dir", "p0", "checkpoint", "out"],
            "fullmask": ["data_dir", "checkpoint", "out"], "figures": ["metrics", "data_dir", "checkpoint_dir", "outdir"]}
    args, block = parse_step(ap, argv, need)
    common = {"scale": args.scale, "threads": args.threads}
    if args.step == "p0":
        run_p0(block, seed=args.seed, data_dir=args.data_dir, checkpoint=args.checkpoint, out=args.out, **common)
    elif args.step == "active":
        run_active(block, strategy=args.strategy, seed=args.seed, data_dir=args.data_dir, p0=args.p0,
                   checkpoint=args.checkpoint, out=args.out, **common)
    elif args.step == "fullmask":
        run_fullmask(block, seed=args.seed, data_dir=args.data_dir, checkpoint=args.checkpoint, out=args.out,
                     **common)
    else:
        run_figures(block, scale=args.scale, metrics=args.metrics, outdir=args.outdir, data_dir=args.data_dir,
                    checkpoint_dir=args.checkpoint_dir)


if __name__ == "__main__":
    main()
