"""COCO evaluation (``COCOeval``) for ``bbox`` and ``segm``, as flat metric dicts.

**Evaluator.** Ground truth and results are loaded with pycocotools; matching and
accumulation run in ``faster_coco_eval.COCOeval_faster`` (C++), whose ``precision`` and
``recall`` arrays are pycocotools' ``COCOeval``'s up to the last bit (an entry can differ by one
ulp: tp + fp + eps summed in another order; ``tests/engine/test_coco_eval.py`` compares every
metric, bbox and segm, with the absolute ranges, to 1e-12 relative); the summary numbers are
computed from those arrays with ``COCOeval.summarize``'s formula (:func:`summary_stats`).
Matching and accumulation take 0.07 s instead of 1.4 s for 500 images with 16 detections each,
and a whole :func:`evaluate` of 500 images with 64 detections each 0.47 s instead of 1.45 s,
which matters where a run evaluates every group of Group DETR or an AP-vs-step curve.
``evaluator="pycocotools"`` runs pycocotools' own ``COCOeval``.

Metric names (per IoU type; :func:`evaluate_detections` prefixes them ``bbox_`` / ``segm_``):
``AP`` (IoU .50:.95), ``AP50``, ``AP75``, ``AP_S``, ``AP_M``, ``AP_L``, ``AR1``, ``AR10``,
``AR100``, ``AR_S``, ``AR_M``, ``AR_L`` — COCO's twelve summary numbers, as fractions in
[0, 1]. A number COCO reports as -1 (no ground truth in that area range) becomes NaN:
drop it before ``write_run_metrics``, which accepts only finite values.

**Area ranges.** COCO calls an object small below 32² px², large above 96² px², in images
whose longer side is 640 px. Those absolute thresholds are meaningless for 64-px images,
so with ``area_rule="scaled"`` they keep the same *fraction of the image*:

    small  : area ≤ (32 · s / 640)²        medium : (32 · s / 640)² < area ≤ (96 · s / 640)²
    large  : area > (96 · s / 640)²        where s = longer image side in px

(s = 64 → 10.24 and 92.16 px²; s = 128 → 40.96 and 368.64 px²). ``s`` is ``image_size``
if given, else the median longer side of the ground-truth images. ``area_rule="coco"``
keeps COCO's defaults (use it at ``paper`` scale). The same ranges apply to AR_S/M/L.

**Absolute split** (``abs_areas=(a1, a2)`` px², optional): for claims about small objects
on small images, a second, *absolute* split is reported beside the headline one, e.g.
``(144, 576)`` = 12² / 24² px²:

    AP_S_abs, AR_S_abs : area ≤ a1        AP_M_abs, AR_M_abs : a1 < area ≤ a2
    AP_L_abs, AR_L_abs : area > a2

(half-open, unlike COCO's closed ranges above, so an object of area exactly ``a1`` is
small only). They come from the same ``COCOeval`` run, its ``params.areaRng`` extended
by these three ranges after the usual (all, small, medium, large) — the same numbers as
a second run with ``areaRng = [all, [0, a1], (a1, a2], (a2, ∞)]``; COCOeval evaluates
every range independently, so the twelve headline numbers are unchanged. NaN for a range
without ground truth, as above. Areas are the ground truth's ``area`` field (for
``shapes``: the visible mask area, also for ``bbox``) and, for unmatched detections,
their box (``bbox``) or mask (``segm``) area.

Predictions are COCO result dicts (``image_id``, ``category_id``, ``score`` and ``bbox``
[x, y, w, h] px and/or ``segmentation`` RLE); :func:`results_from_predictions` builds them
from DETR-style per-image outputs. Empty predictions give 0.0 for every range that has
ground truth (NaN otherwise) without calling pycocotools, which cannot load an empty list.
For ``segm`` the ``bbox`` field is dropped from the results, so that detection areas are
mask areas (pycocotools would otherwise take the box area; detectron2 does the same).
pycocotools' prints are silenced.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import os
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

METRIC_NAMES = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "AR1", "AR10", "AR100", "AR_S", "AR_M", "AR_L")
ABS_METRIC_NAMES = ("AP_S_abs", "AP_M_abs", "AP_L_abs", "AR_S_abs", "AR_M_abs", "AR_L_abs")   # with abs_areas
COCO_REFERENCE_SIDE = 640.0       # longer side of a COCO image: where 32² / 96² were defined
COCO_SMALL, COCO_LARGE = 32.0, 96.0
_MAX_AREA = 1e5**2                # COCO's "no upper bound"
AreaRule = Literal["scaled", "coco"]


def area_ranges(image_size: float | None) -> list[list[float]]:
    """``COCOeval.params.areaRng`` (all, small, medium, large) for images of longer side ``image_size``.

    ``None`` gives COCO's defaults. See the module docstring for the rule.
    """
    k = 1.0 if image_size is None else float(image_size) / COCO_REFERENCE_SIDE
    s, m = (COCO_SMALL * k) ** 2, (COCO_LARGE * k) ** 2
    return [[0.0, _MAX_AREA], [0.0, s], [s, m], [m, _MAX_AREA]]


def abs_area_ranges(abs_areas: Sequence[float]) -> list[list[float]]:
    """The three absolute ranges (small, medium, large) of ``abs_areas = (a1, a2)`` px²:
    [0, a1], (a1, a2], (a2, ∞) — an open lower end as the next float above it."""
    try:
        if isinstance(abs_areas, (str, bytes)):
            raise TypeError
        a1, a2 = (float(a) for a in abs_areas)
    except (TypeError, ValueError):
        raise ValueError(f"abs_areas = {abs_areas!r}: expected two areas (a1, a2) in px², "
                         "e.g. (144, 576) = 12², 24²") from None
    if not (0 < a1 < a2 < _MAX_AREA):
        raise ValueError(f"abs_areas = {abs_areas!r}: expected 0 < a1 < a2 (px², small ≤ a1 < medium ≤ a2 < "
                         "large), e.g. (144, 576) = 12², 24²")
    return [[0.0, a1], [float(np.nextafter(a1, np.inf)), a2], [float(np.nextafter(a2, np.inf)), _MAX_AREA]]


def load_coco_gt(gt: str | os.PathLike | dict | COCO) -> COCO:
    """A pycocotools ``COCO`` from a JSON path, a dict or an existing ``COCO`` (silently)."""
    if isinstance(gt, COCO):
        return gt
    coco = COCO()
    coco.dataset = json.loads(Path(gt).read_text()) if not isinstance(gt, dict) else copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _image_side(coco: COCO, img_ids: Sequence[int]) -> float:
    sides = [max(coco.imgs[i]["width"], coco.imgs[i]["height"]) for i in img_ids]
    return float(np.median(sides))


def _empty_metrics(coco: COCO, img_ids: Sequence[int], ranges: list[list[float]],
                   abs_ranges: list[list[float]] | None = None) -> dict[str, float]:
    """Metrics of an empty prediction list: 0 where the range holds ground truth, NaN elsewhere."""
    anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=list(img_ids))) if not a.get("iscrowd", 0)]
    areas = np.array([a["area"] for a in anns], float)
    has = [bool(((areas >= lo) & (areas <= hi)).any()) for lo, hi in ranges + (abs_ranges or [])]
    zero = lambda ok: 0.0 if ok else float("nan")  # noqa: E731
    which = {"AP": 0, "AP50": 0, "AP75": 0, "AP_S": 1, "AP_M": 2, "AP_L": 3, "AR1": 0, "AR10": 0, "AR100": 0,
             "AR_S": 1, "AR_M": 2, "AR_L": 3, "AP_S_abs": 4, "AP_M_abs": 5, "AP_L_abs": 6, "AR_S_abs": 4,
             "AR_M_abs": 5, "AR_L_abs": 6}
    names = METRIC_NAMES + (ABS_METRIC_NAMES if abs_ranges else ())
    return {name: zero(has[which[name]]) for name in names}


_ABS_LABELS = ("small_abs", "medium_abs", "large_abs")


def _summarize(ev, ap: bool, iou: float | None = None, area: str = "all", max_dets: int = 100) -> float:
    """One of ``COCOeval.summarize``'s numbers of an accumulated ``ev``: the mean of the
    ``precision`` (``ap``) or ``recall`` entries > -1 at IoU threshold ``iou`` (all if None),
    area range label ``area`` and detection cap ``max_dets``; -1 if there is none."""
    p = ev.params
    a = [i for i, lbl in enumerate(p.areaRngLbl) if lbl == area]
    m = [i for i, d in enumerate(p.maxDets) if d == max_dets]
    s = ev.eval["precision" if ap else "recall"]
    if iou is not None:
        s = s[np.where(iou == p.iouThrs)[0]]
    s = s[:, :, :, a, m] if ap else s[:, :, a, m]
    return -1.0 if s[s > -1].size == 0 else float(np.mean(s[s > -1]))


def _abs_stats(ev) -> dict[str, float]:
    """AP and AR (IoU .50:.95, 100 detections) of the absolute ranges of an accumulated
    ``ev``: COCOeval's own ``summarize`` formula (mean over the entries > -1), NaN if none."""
    top = ev.params.maxDets[2]                # summarize's AP_S/M/L and AR_S/M/L: maxDets[2] (100)
    out = {}
    for kind in ("AP", "AR"):
        for size, label in zip("SML", _ABS_LABELS):
            v = _summarize(ev, kind == "AP", area=label, max_dets=top)
            out[f"{kind}_{size}_abs"] = float("nan") if v < 0 else v
    return out


def _strip(results: Iterable[dict], iou_type: str) -> list[dict]:
    """Fresh result dicts holding only what ``iou_type`` reads, their box / mask copied:
    ``COCO.loadRes`` adds keys to the dicts it is given, and a ``copy.deepcopy`` of every result
    took 70 % of an evaluation of 32,000 detections."""
    geom = "bbox" if iou_type == "bbox" else "segmentation"
    out = []
    for r in results:
        if geom not in r:
            raise ValueError(f"{iou_type} evaluation needs {geom!r} in every result; got keys {sorted(r)}")
        g = list(r["bbox"]) if geom == "bbox" else copy.deepcopy(r["segmentation"])
        out.append({"image_id": r["image_id"], "category_id": r["category_id"], "score": r["score"], geom: g})
    return out


def summary_stats(ev) -> list[float]:
    """COCO's twelve summary numbers (:data:`METRIC_NAMES` order) of an accumulated ``ev``, with
    ``COCOeval.summarize``'s formula (:func:`_summarize`), -1 where a number has no entry.
    Independent of the evaluator's own ``stats`` layout, which differs with extra area ranges."""
    d = ev.params.maxDets
    one = functools.partial(_summarize, ev)
    return [one(True), one(True, .5, max_dets=d[2]), one(True, .75, max_dets=d[2]),
            one(True, area="small", max_dets=d[2]), one(True, area="medium", max_dets=d[2]),
            one(True, area="large", max_dets=d[2]), one(False, max_dets=d[0]), one(False, max_dets=d[1]),
            one(False, max_dets=d[2]), one(False, area="small", max_dets=d[2]),
            one(False, area="medium", max_dets=d[2]), one(False, area="large", max_dets=d[2])]


EVALUATORS = ("faster", "pycocotools")


def evaluate(gt: str | os.PathLike | dict | COCO, results: Sequence[dict], *, iou_type: str = "bbox",
             area_rule: AreaRule = "scaled", image_size: float | None = None,
             img_ids: Sequence[int] | None = None,
             abs_areas: tuple[float, float] | None = None, evaluator: str = "faster") -> dict[str, float]:
    """COCO summary metrics of ``results`` against ``gt`` for one IoU type (``bbox`` or ``segm``).

    ``img_ids`` restricts the evaluation (default: every ground-truth image, including
    images with no prediction). Returns ``{name: value}`` for :data:`METRIC_NAMES`, plus
    :data:`ABS_METRIC_NAMES` when ``abs_areas = (a1, a2)`` px² is given (absolute split
    ≤ a1 < ... ≤ a2 < ..., see the module docstring; the headline metrics do not change).
    ``evaluator``: ``faster`` (``faster_coco_eval``'s C++ ``COCOeval_faster``) or
    ``pycocotools`` (identical arrays, slower; module docstring).
    """
    if evaluator not in EVALUATORS:
        raise ValueError(f"evaluator = {evaluator!r}: expected one of {EVALUATORS}")
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type = {iou_type!r}: expected 'bbox' or 'segm'")
    if area_rule not in ("scaled", "coco"):
        raise ValueError(f"area_rule = {area_rule!r}: expected 'scaled' or 'coco'")
    coco_gt = load_coco_gt(gt)
    img_ids = sorted(coco_gt.getImgIds()) if img_ids is None else list(img_ids)
    side = None if area_rule == "coco" else (image_size or _image_side(coco_gt, img_ids))
    ranges = area_ranges(side)
    abs_ranges = None if abs_areas is None else abs_area_ranges(abs_areas)
    results = _strip(results, iou_type)
    if not results:
        return _empty_metrics(coco_gt, img_ids, ranges, abs_ranges)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)   # loadRes edits the dicts it is given: _strip's fresh copies
        if evaluator == "faster":
            from faster_coco_eval import COCOeval_faster

            ev = COCOeval_faster(coco_gt, coco_dt, iou_type)
        else:
            ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.params.imgIds = img_ids
        ev.params.areaRng = ranges
        if abs_ranges is not None:   # (all, small, medium, large) first, as summarize expects
            ev.params.areaRng = ranges + abs_ranges
            ev.params.areaRngLbl = ["all", "small", "medium", "large", *_ABS_LABELS]
        ev.evaluate()
        ev.accumulate()
    out = {name: (float("nan") if v < 0 else float(v)) for name, v in zip(METRIC_NAMES, summary_stats(ev))}
    if abs_ranges is not None:
        out.update(_abs_stats(ev))
    return out


def evaluate_detections(gt: str | os.PathLike | dict | COCO, results: Sequence[dict], *,
                        iou_types: Sequence[str] = ("bbox", "segm"), area_rule: AreaRule = "scaled",
                        image_size: float | None = None, img_ids: Sequence[int] | None = None,
                        abs_areas: tuple[float, float] | None = None) -> dict[str, float]:
    """:func:`evaluate` for each IoU type, names prefixed: ``bbox_AP``, ..., ``segm_AR_L``
    (and ``bbox_AP_S_abs``, ..., ``segm_AR_L_abs`` with ``abs_areas``)."""
    coco_gt = load_coco_gt(gt)
    out = {}
    for t in iou_types:
        m = evaluate(coco_gt, results, iou_type=t, area_rule=area_rule, image_size=image_size, img_ids=img_ids,
                     abs_areas=abs_areas)
        out.update({f"{t}_{k}": v for k, v in m.items()})
    return out


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def results_from_predictions(predictions: Sequence[dict], image_ids: Sequence[int], category_ids: Sequence[int], *,
                             box_format: Literal["xyxy", "cxcywh_norm"] = "xyxy",
                             image_sizes: Sequence[Sequence[int]] | None = None,
                             mask_threshold: float = 0.5) -> list[dict]:
    """COCO result dicts from per-image predictions (tensors or arrays).

    ``predictions[i]`` belongs to COCO image ``image_ids[i]`` and holds ``scores`` (n,),
    ``labels`` (n,) contiguous class indices (``category_ids[label]`` is the COCO id),
    ``boxes`` (n, 4) — absolute ``x0, y0, x1, y1`` px (DETR's ``PostProcess`` output) or,
    with ``box_format="cxcywh_norm"``, normalised ``cx, cy, w, h`` scaled by
    ``image_sizes[i] = (h, w)`` — and optionally ``masks`` (n, H, W), bool or
    probabilities (``> mask_threshold``), at the original image size.
    """
    out = []
    for i, (pred, img_id) in enumerate(zip(predictions, image_ids)):
        scores, labels = _np(pred["scores"]).astype(float), _np(pred["labels"]).astype(int)
        boxes = _np(pred["boxes"]).astype(float).reshape(-1, 4)
        if box_format == "cxcywh_norm":
            if image_sizes is None:
                raise ValueError("box_format='cxcywh_norm' needs image_sizes (h, w) per image")
            h, w = image_sizes[i]
            cx, cy, bw, bh = boxes.T
            xywh = np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h], 1)
        elif box_format == "xyxy":
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
        else:
            raise ValueError(f"box_format = {box_format!r}: expected 'xyxy' or 'cxcywh_norm'")
        rles = None
        if "masks" in pred and len(scores):
            m = _np(pred["masks"])
            m = (m > mask_threshold) if m.dtype != bool else m
            rles = mask_utils.encode(np.asfortranarray(m.transpose(1, 2, 0).astype(np.uint8)))
        for k in range(len(scores)):
            r = {"image_id": int(img_id), "category_id": int(category_ids[labels[k]]), "score": float(scores[k]),
                 "bbox": [float(x) for x in xywh[k]]}
            if rles is not None:
                r["segmentation"] = {"size": list(rles[k]["size"]), "counts": rles[k]["counts"].decode("ascii")}
            out.append(r)
    return out


def evaluate_model(model, val, mean, std, *, keys: Sequence[str], area_rule: AreaRule = "scaled",
                   abs_areas: Sequence[float] | None = None, batch_size: int = 50) -> dict[str, float]:
    """COCO bbox metrics ``keys`` (those that are finite) of a detector on a validation set.

    ``model(images)`` in eval mode must return one dict per image with ``boxes`` (n, 4) xyxy
    pixels, ``scores`` (n,) and ``labels`` (n,) contiguous class indices (a
    ``layers.dense.DenseDetector``). ``val``: a ``DetectionSet`` (or ``SquareCocoSet``) with
    ``images``, ``image_ids``, ``category_ids`` and ``coco_path``; batches are normalised with
    ``mean``/``std`` and moved to the model's device, predictions back to the CPU.
    """
    import math

    import torch

    from .images import to_float

    model.eval()
    preds, dev = [], next(model.parameters()).device
    with torch.no_grad():
        for s in range(0, len(val), batch_size):
            out = model(to_float(val.images[s:s + batch_size], mean, std).to(dev))
            preds += [{k: v.cpu() for k, v in p.items()} for p in out]
    res = results_from_predictions(preds, val.image_ids, val.category_ids)
    m = evaluate(val.coco_path, res, area_rule=area_rule, img_ids=val.image_ids, abs_areas=abs_areas)
    return {k: float(m[k]) for k in keys if k in m and math.isfinite(m[k])}
