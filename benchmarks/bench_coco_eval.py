"""COCOeval time per 1000 images (bbox, segm) and `shapes` generation time (run on demand).

    python benchmarks/bench_coco_eval.py [--images 200 1000 3000] [--repeats 3]

Evaluation data: `shapes` images at the mini settings, rendered in memory; predictions are
the ground truth with boxes jittered by σ = 2 px (masks shifted by the rounded jitter),
10% of objects missed, 10% given a wrong class, and one random false positive on half of
the images. Each timing covers what a
training run calls: ``paperzoo.engine.coco_eval.evaluate`` (loadRes + evaluate +
accumulate + summarize), ground truth already loaded. Generation timings run
``paperzoo.data.generate`` end to end (render, PNGs, npy, COCO JSON, hashed manifest)
into a temporary folder, for the tiny and mini `shapes` settings. One thread.
Writes ``benchmarks/results/coco_eval.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from paperzoo.data.generate import generate  # noqa: E402
from paperzoo.data.shapes import coco_json, render, shapes_spec_from_config  # noqa: E402
from paperzoo.engine.coco_eval import evaluate, load_coco_gt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def shapes_block(scale: str) -> dict:
    """``data.shapes`` of config/config.yaml after the ``scale`` overlay."""
    from paperzoo.engine.config import resolve

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    return resolve({**cfg, "scale": scale}, REPO)["data"]["shapes"]


def predictions(gt: dict, rng: np.random.Generator) -> list[dict]:
    """Noisy copies of the ground truth (see the module docstring)."""
    from pycocotools import mask as mask_utils

    n_cat = len(gt["categories"])
    out = []
    for a in gt["annotations"]:
        if rng.random() < 0.1:
            continue
        dx, dy = rng.normal(0, 2.0, 2)
        x, y, w, h = a["bbox"]
        m = mask_utils.decode(a["segmentation"])
        m = np.roll(m, (int(round(dy)), int(round(dx))), axis=(0, 1))
        rle = mask_utils.encode(np.asfortranarray(m))
        cat = a["category_id"] if rng.random() >= 0.1 else int(rng.integers(1, n_cat + 1))
        out.append({"image_id": a["image_id"], "category_id": cat, "score": float(rng.uniform(0.3, 1.0)),
                    "bbox": [x + dx, y + dy, w, h], "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    for im in gt["images"]:
        if rng.random() < 0.5:
            s = im["width"]
            x, y = rng.uniform(0, s - 8, 2)
            w, h = rng.uniform(4, 16, 2)
            m = np.zeros((s, s), np.uint8, order="F")
            m[int(y):int(y + h), int(x):int(x + w)] = 1
            rle = mask_utils.encode(m)
            out.append({"image_id": im["id"], "category_id": int(rng.integers(1, n_cat + 1)),
                        "score": float(rng.uniform(0.0, 0.6)), "bbox": [x, y, w, h],
                        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    return out


def bench_eval(block: dict, n_images: int, repeats: int) -> dict:
    spec = shapes_spec_from_config(block)
    gt = coco_json(render(spec, n_images, seed=0, split="bench"), spec, split="bench", seed=0)
    preds = predictions(gt, np.random.default_rng(0))
    coco_gt = load_coco_gt(gt)
    row = {"images": n_images, "gt_objects": len(gt["annotations"]), "detections": len(preds)}
    for t in ("bbox", "segm"):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            m = evaluate(coco_gt, preds, iou_type=t)
            times.append(time.perf_counter() - t0)
        row[f"{t}_s"] = float(np.median(times))
        row[f"{t}_s_per_1000_images"] = float(np.median(times)) * 1000 / n_images
        row[f"{t}_AP"], row[f"{t}_AP50"] = m["AP"], m["AP50"]
    return row


def bench_generate(scale: str) -> dict:
    block = shapes_block(scale)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        m = generate("shapes", block, tmp)
        wall = time.perf_counter() - t0
    spec = shapes_spec_from_config(block)
    t0 = time.perf_counter()
    render(spec, int(block["n_train"]), seed=int(block["seed"]), split="train")
    render_s = time.perf_counter() - t0
    n = int(block["n_train"]) + int(block["n_val"])
    return {"scale": scale, "images": n, "image_size": spec.image_size,
            "instances": sum(c["instances"] for c in m["counts"].values()), "files": len(m["files"]),
            "generate_s": wall, "render_train_only_s": render_s, "generate_ms_per_image": 1000 * wall / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, nargs="+", default=[200, 1000, 3000])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    mini = shapes_block("mini")
    out = {"host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
           "threads": 1, "eval": [bench_eval(mini, n, args.repeats) for n in args.images],
           "generate": [bench_generate(s) for s in ("tiny", "mini")],
           "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    dest = REPO / "benchmarks" / "results" / "coco_eval.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
