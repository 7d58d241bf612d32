"""DETR-lite on `shapes`: teacher AP within the mini budget, training throughput, COCOeval time.

    python benchmarks/bench_detr_lite.py teacher    [--threads 1] [--seed 0] [--steps 2500]
    python benchmarks/bench_detr_lite.py throughput [--threads 1]
    python benchmarks/bench_detr_lite.py cocoeval

``teacher`` trains a DETR-lite teacher through ``engine.train`` on an in-memory ``shapes``
split and scores group-0 predictions on a validation split with pycocotools (bbox AP,
AP50, AP75, AP_S/M/L).
``throughput`` times the same model's training step through ``engine.train`` against a
bare ``for`` loop (forward, Hungarian loss, backward, clip, AdamW) on identical batches.
``cocoeval`` times COCOeval (loadRes + evaluate + accumulate + summarize) per 1000 images.
Each part updates its key of ``benchmarks/results/detr_lite.json``.

COCO evaluation: ``paperzoo.engine.coco_eval.evaluate`` (area ranges scaled to 64 px) when
importable, else pycocotools directly (AP, AP50, AP75 only).
Data: ``paperzoo.data.shapes.render`` when importable, else the throw-away generator
below (filled rectangles / ellipses / triangles); the JSON records which one ran.
Numbers depend on the machine load: take them on an idle machine (`uptime` < 0.5).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

from paperzoo.engine.io import write_json  # noqa: E402
from paperzoo.engine.seeding import seed_everything  # noqa: E402
from paperzoo.engine.train import IndexBatches, step_generator, train  # noqa: E402
from paperzoo.layers import box_ops, create_model  # noqa: E402
from paperzoo.layers.criterion import SetCriterion, weighted_loss, with_aux_weights  # noqa: E402
from paperzoo.layers.detr_lite import PostProcess  # noqa: E402
from paperzoo.layers.matcher import HungarianMatcher  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "detr_lite.json"
WEIGHTS = {"loss_ce": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0}  # DAB/Group DETR: focal 2, L1 5, GIoU 2
# The teacher's scenes: ShapesSpec defaults (64 px, 1-3 objects, textures, clutter, overlaps)
# with 4 kinds, one of which (ring) does not fill its box, and bounding-circle diameters from
# 12 px (boxes >= ~8.5 px). With all 8 kinds and 5 px objects a 4x4-token DETR-lite reached
# only AP 0.03 in 2500 steps; with 4 kinds from 8 px, AP 0.11 (``recipe_sweep`` in the JSON).
TEACHER_SPEC = {"classes": ["disc", "square", "triangle", "ring"], "min_size": 12}


# ----------------------------------------------------------------------------- data
def fallback_split(n: int, seed: int, size: int = 64, n_classes: int = 3) -> tuple[np.ndarray, dict]:
    """Throw-away scenes: 1-3 filled rectangles / ellipses / triangles, noisy flat background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    images = np.empty((n, size, size, 3), np.uint8)
    anns, imgs = [], []
    for i in range(n):
        bg = rng.uniform(0, 255, 3)
        img = np.broadcast_to(bg, (size, size, 3)).copy()
        boxes = []
        for _ in range(rng.integers(1, 4)):
            for _try in range(20):
                w, h = rng.uniform(10, 28, 2)
                x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
                b = np.array([x0, y0, x0 + w, y0 + h])
                if all(_iou(b, o) < 0.2 for o in boxes):
                    break
            else:
                continue
            c = rng.integers(0, n_classes)
            u, v = (xx - x0) / w, (yy - y0) / h
            mask = [(u >= 0) & (u <= 1) & (v >= 0) & (v <= 1),
                    (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25,
                    (v >= 0) & (v <= 1) & (np.abs(u - 0.5) <= 0.5 * v)][c]
            while True:
                col = rng.uniform(0, 255, 3)
                if np.linalg.norm(col - bg) > 80:
                    break
            img[mask] = col
            boxes.append(b)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c) + 1, "iscrowd": 0,
                         "bbox": [x0, y0, w, h], "area": float(mask.sum())})
        images[i] = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
        imgs.append({"id": i + 1, "width": size, "height": size, "file_name": f"{i + 1:012d}.png"})
    cats = [{"id": k + 1, "name": ["rectangle", "ellipse", "triangle"][k]} for k in range(n_classes)]
    return images, {"images": imgs, "annotations": anns, "categories": cats}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw, ih = max(0, min(a[2], b[2]) - max(a[0], b[0])), max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def load_split(source: str, n: int, seed: int, split: str, spec_kw: dict) -> tuple[np.ndarray, dict]:
    if source == "shapes":
        from paperzoo.data.shapes import ShapesSpec, coco_json, render

        spec = ShapesSpec(**spec_kw)
        r = render(spec, n, seed=seed, split=split)
        return r.images, coco_json(r, spec, split=split, seed=seed)
    return fallback_split(n, seed=seed * 1000 + (split == "val"))


def to_tensors(images: np.ndarray, coco: dict) -> tuple[torch.Tensor, list[dict]]:
    """uint8 (N, H, W, 3) + COCO dict -> normalised (N, 3, H, W) float and DETR targets (cxcywh in [0, 1])."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    n, _, h, w = x.shape
    per_image = [[] for _ in range(n)]
    for a in coco["annotations"]:
        per_image[a["image_id"] - 1].append(a)
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    targets = [{"labels": torch.tensor([a["category_id"] - 1 for a in anns], dtype=torch.int64),
                "boxes": box_ops.xywh_to_cxcywh(torch.tensor([a["bbox"] for a in anns], dtype=torch.float32)
                                                .reshape(-1, 4)) / scale}
               for anns in per_image]
    return x.contiguous(), targets


def make_batches(x: torch.Tensor, targets: list[dict], batch_size: int, seed: int):
    """Step ``i`` -> (images (B, 3, H, W), targets), random horizontal flip seeded by (seed, i)."""
    sampler = IndexBatches(len(x), batch_size, seed)

    def batches(i: int):
        idx = sampler(i)
        flip = torch.rand(len(idx), generator=step_generator(seed, i)) < 0.5  # (B,)
        imgs = torch.where(flip[:, None, None, None], x[idx].flip(-1), x[idx])
        tgts = []
        for f, j in zip(flip.tolist(), idx.tolist()):
            b = targets[j]["boxes"]
            if f:
                b = b * torch.tensor([-1.0, 1, 1, 1]) + torch.tensor([1.0, 0, 0, 0])  # cx -> 1 - cx
            tgts.append({"labels": targets[j]["labels"], "boxes": b})
        return imgs, tgts

    return batches


# ----------------------------------------------------------------------------- eval
def coco_ap(model: torch.nn.Module, x: torch.Tensor, coco_gt: dict, num_groups: int | None = None,
            group: int = 0, batch_size: int = 100) -> dict:
    """COCO bbox AP / AP50 / AP75 of one query group's top-100 (query, class) predictions."""
    model.eval()
    post = PostProcess(top_k=100, focal=model.focal)
    Q = model.num_queries
    dets = []
    with torch.no_grad():
        for i0 in range(0, len(x), batch_size):
            xb = x[i0:i0 + batch_size]
            out = model(xb, num_groups=num_groups)
            out = {k: out[k][:, group * Q:(group + 1) * Q] for k in ("pred_logits", "pred_boxes")}
            sizes = torch.tensor([[xb.shape[2], xb.shape[3]]] * len(xb))
            for k, r in enumerate(post(out, sizes)):
                xywh = box_ops.xyxy_to_xywh(r["boxes"])
                dets += [{"image_id": i0 + k + 1, "category_id": int(c) + 1, "bbox": [float(v) for v in b],
                          "score": float(s)} for s, c, b in zip(r["scores"], r["labels"], xywh)]
    return evaluate(coco_gt, dets)


def evaluate(coco_gt: dict, dets: list[dict]) -> dict:
    """bbox AP via ``engine.coco_eval`` (area ranges scaled to the image) when present, else plain pycocotools."""
    try:
        from paperzoo.engine.coco_eval import evaluate as coco_evaluate
    except ImportError:
        coco_evaluate = None
    if coco_evaluate is not None:
        m = coco_evaluate(coco_gt, dets, iou_type="bbox")
        return {k: m[k] for k in ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L")}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco_gt
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": float(ev.stats[0]), "AP50": float(ev.stats[1]), "AP75": float(ev.stats[2])}


# ----------------------------------------------------------------------------- parts
def detr_task(args, n_classes):
    extra = {"backbone": args.backbone} if args.backbone else {}
    extra.update(json.loads(args.model_kw))
    model = create_model(args.model, num_classes=n_classes, num_queries=args.queries, num_groups=args.groups, **extra)
    weights = with_aux_weights(WEIGHTS, len(model.decoder.layers))
    crit = SetCriterion(n_classes, HungarianMatcher(2.0, 5.0, 2.0), weights)

    def loss_fn(m, batch):
        imgs, tgts = batch
        losses = crit(m(imgs), tgts)
        return weighted_loss(losses, weights), losses

    return model, loss_fn


def data(args):
    spec_kw = json.loads(args.spec)
    source = args.data
    if source == "shapes":
        try:
            import paperzoo.data.shapes  # noqa: F401
        except ImportError:
            source = "fallback"
    t0 = time.perf_counter()
    tr_img, tr_coco = load_split(source, args.n_train, args.data_seed, "train", spec_kw)
    va_img, va_coco = load_split(source, args.n_val, args.data_seed, "val", spec_kw)
    x, t = to_tensors(tr_img, tr_coco)
    xv, _ = to_tensors(va_img, va_coco)
    meta = {"source": source, "spec": spec_kw, "n_train": args.n_train, "n_val": args.n_val,
            "classes": [c["name"] for c in tr_coco["categories"]],
            "objects_per_image": len(tr_coco["annotations"]) / args.n_train, "gen_s": time.perf_counter() - t0}
    return x, t, xv, va_coco, meta


def part_teacher(args) -> dict:
    t_start = time.perf_counter()
    x, t, xv, va_coco, meta = data(args)
    seed_everything(args.seed, args.threads)
    model, loss_fn = detr_task(args, len(meta["classes"]))
    curve, eval_s = [], [0.0]

    def callback(step, m):
        t0 = time.perf_counter()
        r = coco_ap(m, xv, va_coco)
        eval_s[0] += time.perf_counter() - t0
        curve.append({"step": step, **r})
        print(f"step {step}: {r}", flush=True)
        return r

    t0 = time.perf_counter()
    hist = train(model, loss_fn, make_batches(x, t, args.batch, args.seed), steps=args.steps, lr=args.lr,
                 warmup=args.warmup, clip_grad=0.1, schedule="step", drop_at=0.85, callback=callback,
                 eval_every=args.eval_every, desc="teacher")
    train_s = time.perf_counter() - t0 - eval_s[0]
    final = curve[-1]
    per_group = {}
    if args.groups > 1:
        per_group = {g: coco_ap(model, xv, va_coco, num_groups=args.groups, group=g)["AP"] for g in range(args.groups)}
    return {"model": args.model, "backbone": args.backbone or "default", "model_kw": json.loads(args.model_kw), "params": sum(p.numel() for p in model.parameters()), "seed": args.seed,
            "threads": args.threads, "batch": args.batch, "lr": args.lr, "warmup": args.warmup,
            "steps": args.steps, "queries": args.queries, "groups": args.groups, "data": meta,
            **final, "curve": curve, "per_group_AP": per_group, "train_s": train_s, "eval_s": eval_s[0],
            "wall_s": time.perf_counter() - t_start, "final_loss": float(np.mean([h["loss"] for h in hist[-50:]])),
            "load_avg_after": os.getloadavg()[0]}


def part_throughput(args) -> dict:
    x, t, _, _, meta = data(args)
    seed_everything(0, args.threads)
    batches = make_batches(x, t, args.batch, 0)
    n = args.tp_steps
    rates = {"engine": [], "bare": []}
    for rep in range(args.tp_reps):  # interleaved, so drifting load hits both alike
        for kind in ("bare", "engine"):
            torch.manual_seed(0)
            model, loss_fn = detr_task(args, len(meta["classes"]))
            batch_list = [batches(i) for i in range(n)]  # identical batches, pre-built for both
            t0 = time.perf_counter()
            if kind == "engine":  # the full path: progress bar, resumable loop, atomic final write
                with tempfile.TemporaryDirectory() as tmp:
                    train(model, loss_fn, lambda i: batch_list[i], steps=n, final=Path(tmp) / "m.pt", lr=args.lr,
                          warmup=args.warmup, progress=True, desc="engine")
            else:
                opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
                model.train()
                for i in range(n):
                    loss, _ = loss_fn(model, batch_list[i])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
                    opt.step()
            rates[kind].append(n * args.batch / (time.perf_counter() - t0))
            print(f"rep {rep} {kind}: {rates[kind][-1]:.1f} img/s", flush=True)
    med = {k: float(np.median(v)) for k, v in rates.items()}
    return {"model": args.model, "threads": args.threads, "batch": args.batch, "steps_per_rep": n,
            "images_per_s_engine": med["engine"], "images_per_s_bare": med["bare"],
            "ratio_engine_over_bare": med["engine"] / med["bare"], "all": rates,
            "load_avg_after": os.getloadavg()[0]}


def part_cocoeval(args) -> dict:
    args.n_train = 10  # unused
    _, _, xv, va_coco, meta = data(args)
    rng = np.random.default_rng(0)
    dets = []
    for a in va_coco["annotations"]:  # jittered GT, 10% missed, plus one false positive per image
        if rng.random() < 0.9:
            b = np.asarray(a["bbox"]) + rng.normal(0, 1.5, 4)
            dets.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": b.tolist(),
                         "score": float(rng.random())})
    for im in va_coco["images"]:
        dets.append({"image_id": im["id"], "category_id": 1, "bbox": [5.0, 5.0, 10.0, 10.0], "score": 0.1})
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        r = evaluate(va_coco, dets)
        times.append(time.perf_counter() - t0)
    return {"images": args.n_val, "detections": len(dets), "s_per_1000_images": float(np.median(times)) * 1000 / args.n_val,
            **r}


def _has_coco_eval() -> bool:
    try:
        import paperzoo.engine.coco_eval  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["teacher", "throughput", "cocoeval"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="shapes", choices=["shapes", "fallback"])
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--spec", default=json.dumps(TEACHER_SPEC), help="ShapesSpec overrides as JSON")
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-val", type=int, default=300)
    ap.add_argument("--model", default="detr_lite_m")
    ap.add_argument("--backbone", default="", help="registry name overriding the model's backbone")
    ap.add_argument("--model-kw", default="{}", help="more create_model overrides as JSON")
    ap.add_argument("--queries", type=int, default=16)
    ap.add_argument("--groups", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)  # beat the probe's 3e-4: AP .107 vs .086 at 1500 steps
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--tp-steps", type=int, default=60)
    ap.add_argument("--tp-reps", type=int, default=3)
    ap.add_argument("--tag", default="", help="suffix of the result key (recipe experiments)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = {"part_teacher": part_teacher, "part_throughput": part_throughput,
              "part_cocoeval": part_cocoeval}[f"part_{args.part}"](args)
    result.update(coco_eval="paperzoo.engine.coco_eval" if _has_coco_eval() else "pycocotools", host=platform.node(), cpus=os.cpu_count(), when=time.strftime("%Y-%m-%dT%H:%M:%S"),
                  torch=torch.__version__)
    print(json.dumps({k: v for k, v in result.items() if k not in ("curve", "all")}, indent=2))
    old = json.loads(OUT.read_text()) if OUT.exists() else {}
    old[args.part + (f"-{args.tag}" if args.tag else "")] = result
    write_json(OUT, old)


if __name__ == "__main__":
    main()
