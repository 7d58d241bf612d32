"""COCO evaluation on hand-checkable cases (20×20 px square objects in 64×64 images)."""
import math

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from paperzoo.engine.coco_eval import (ABS_METRIC_NAMES, METRIC_NAMES, area_ranges, evaluate, evaluate_detections,
                                       results_from_predictions)

S = 64
# pycocotools 2.0.11 + numpy 2: harmless DeprecationWarning on every mask decode
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _rle(x, y, w, h):
    m = np.zeros((S, S), np.uint8, order="F")
    m[y:y + h, x:x + w] = 1
    r = mask_utils.encode(m)
    return {"size": r["size"], "counts": r["counts"].decode("ascii")}


def _gt(boxes_per_image, side=S):
    """COCO dict: image i+1 holds the given (x, y, w, h, category_id) rectangles (masks = boxes)."""
    images, anns = [], []
    for i, boxes in enumerate(boxes_per_image):
        images.append({"id": i + 1, "file_name": f"{i + 1}.png", "width": side, "height": side})
        for x, y, w, h, c in boxes:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": c, "bbox": [x, y, w, h],
                         "area": float(w * h), "iscrowd": 0, "segmentation": _rle(x, y, w, h)})
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}


# 4 images × (one object of each class): 4 ground truths per class, all 20×20 = 400 px² (large at 64 px)
GT = _gt([[(5 + i, 5, 20, 20, 1), (35, 30 - i, 20, 20, 2)] for i in range(4)])


def _as_results(anns, dx=0, score=1.0):
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "score": score,
             "bbox": [a["bbox"][0] + dx, *a["bbox"][1:]],
             "segmentation": _rle(a["bbox"][0] + dx, *a["bbox"][1:])} for a in anns]


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_perfect_predictions_give_ap_one(iou_type):
    m = evaluate(GT, _as_results(GT["annotations"]), iou_type=iou_type)
    assert set(m) == set(METRIC_NAMES)
    for k in ("AP", "AP50", "AP75", "AP_L", "AR10", "AR100", "AR_L"):
        assert m[k] == 1.0, k
    assert math.isnan(m["AP_S"]) and math.isnan(m["AP_M"])      # no small/medium ground truth: NaN, not -1
    assert m["AR1"] == 1.0     # maxDets counts per image *and class*: one object of each class per image


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_shifted_boxes_drop_ap_as_expected(iou_type):
    # 20×20 box moved 4 px: IoU = 16·20 / (2·400 − 16·20) = 2/3, a match at thresholds .50 .55 .60 .65 only
    m = evaluate(GT, _as_results(GT["annotations"], dx=4), iou_type=iou_type)
    assert m["AP50"] == 1.0 and m["AP75"] == 0.0
    assert m["AP"] == pytest.approx(0.4)                           # 4 of the 10 IoU thresholds


def test_missing_half_halves_recall_and_gives_51_of_101_precision_points():
    half = [a for a in GT["annotations"] if a["image_id"] <= 2]      # 2 of 4 objects per class
    m = evaluate(GT, _as_results(half), iou_type="bbox")
    assert m["AR100"] == 0.5
    # precision 1 up to recall 0.5, then 0: 51 of COCO's 101 recall points
    assert m["AP"] == pytest.approx(51 / 101) and m["AP50"] == pytest.approx(51 / 101)


def test_low_scored_false_positives_do_not_hurt_but_high_scored_do():
    fps = [{"image_id": 1, "category_id": 1, "score": s, "bbox": [40.0, 40.0, 10.0, 10.0],
            "segmentation": _rle(40, 40, 10, 10)} for s in (0.1, 0.9)]
    good = _as_results(GT["annotations"], score=0.5)
    assert evaluate(GT, good + fps[:1])["AP"] == 1.0
    # class 1: the FP ranks first → precision 1/2, 2/3, 3/4, 4/5 at recall .25 … 1, interpolated
    # to the max precision at higher recall = 0.8 everywhere; class 2 stays at 1.0
    assert evaluate(GT, good + fps[1:])["AP"] == pytest.approx((0.8 + 1.0) / 2)


def test_empty_predictions_give_zero_without_crashing():
    for t in ("bbox", "segm"):
        m = evaluate(GT, [], iou_type=t)
        assert m["AP"] == 0.0 and m["AR100"] == 0.0 and m["AP_L"] == 0.0
        assert math.isnan(m["AP_S"])
    m = evaluate_detections(GT, [])
    assert m["bbox_AP"] == 0.0 and m["segm_AP"] == 0.0


def test_area_ranges_scale_with_image_size_and_coco_default():
    assert area_ranges(None)[1:] == [[0.0, 32.0**2], [32.0**2, 96.0**2], [96.0**2, 1e10]]
    small, medium, large = area_ranges(64)[1:]
    assert small[1] == pytest.approx(3.2**2) and medium[1] == pytest.approx(9.6**2) and large[0] == medium[1]
    assert area_ranges(128)[1][1] == pytest.approx(6.4**2)
    # a 7×7 = 49 px² object is "medium" in a 64-px image, but "small" under COCO's absolute thresholds
    gt = _gt([[(10, 10, 7, 7, 1)]])
    res = _as_results(gt["annotations"])
    scaled, coco = evaluate(gt, res, area_rule="scaled"), evaluate(gt, res, area_rule="coco")
    assert scaled["AP_M"] == pytest.approx(1.0) and math.isnan(scaled["AP_S"])
    assert coco["AP_S"] == pytest.approx(1.0) and math.isnan(coco["AP_M"])
    # an explicit image size overrides the one read from the ground truth
    assert evaluate(gt, res, image_size=640)["AP_S"] == pytest.approx(1.0)


def _ell(x, y):
    """A one-pixel-wide L in a 30×30 box: 59 px of mask (medium at 64 px), 900 px² of box (large)."""
    m = np.zeros((S, S), np.uint8, order="F")
    m[y:y + 30, x] = 1
    m[y + 29, x:x + 30] = 1
    r = mask_utils.encode(m)
    return {"size": r["size"], "counts": r["counts"].decode()}


def test_segm_uses_mask_area_not_box_area():
    """An unmatched detection is judged by its area: mask area for segm, as the ground truth."""
    gt = {"images": [{"id": 1, "width": S, "height": S, "file_name": "1.png"}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 30, 30], "area": 59.0,
                           "iscrowd": 0, "segmentation": _ell(2, 2)}]}
    hit = {"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [2, 2, 30, 30], "segmentation": _ell(2, 2)}
    false_pos = {"image_id": 1, "category_id": 1, "score": 0.9, "bbox": [32, 32, 30, 30], "segmentation": _ell(32, 32)}
    out = evaluate(gt, [hit, false_pos], iou_type="segm")
    # the false positive (59 px, medium) ranks first: precision 1/2 at full recall. Judged by
    # its box (900 px², large) it would be ignored in the medium range and AP_M would be 1.
    assert out["AP_M"] == pytest.approx(0.5) and math.isnan(out["AP_L"])


def test_results_from_detr_style_predictions_roundtrip():
    preds, ids = [], []
    for im in GT["images"]:
        anns = [a for a in GT["annotations"] if a["image_id"] == im["id"]]
        xyxy = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                             for a in anns], dtype=torch.float32)
        masks = torch.from_numpy(np.stack([mask_utils.decode(a["segmentation"]) for a in anns])).float()
        preds.append({"boxes": xyxy, "scores": torch.tensor([0.9, 0.8]), "masks": masks,
                      "labels": torch.tensor([a["category_id"] - 1 for a in anns])})
        ids.append(im["id"])
    res = results_from_predictions(preds, ids, category_ids=[1, 2])
    m = evaluate_detections(GT, res)
    assert m["bbox_AP"] == 1.0 and m["segm_AP"] == 1.0
    # the same boxes as normalised cx, cy, w, h
    norm = [{**p, "boxes": torch.stack([(p["boxes"][:, 0] + p["boxes"][:, 2]) / 2 / S,
                                        (p["boxes"][:, 1] + p["boxes"][:, 3]) / 2 / S,
                                        (p["boxes"][:, 2] - p["boxes"][:, 0]) / S,
                                        (p["boxes"][:, 3] - p["boxes"][:, 1]) / S], 1)} for p in preds]
    res2 = results_from_predictions(norm, ids, [1, 2], box_format="cxcywh_norm", image_sizes=[(S, S)] * 4)
    np.testing.assert_allclose([r["bbox"] for r in res2], [r["bbox"] for r in res], atol=1e-4)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="iou_type"):
        evaluate(GT, [], iou_type="keypoints")
    with pytest.raises(ValueError, match="needs 'segmentation'"):
        evaluate(GT, [{"image_id": 1, "category_id": 1, "score": 1.0, "bbox": [0, 0, 1, 1]}], iou_type="segm")


# --- absolute area split (abs_areas) ------------------------------------------------------------

ABS = (144.0, 576.0)        # 12² / 24² px²
# 4 images × (8×8 = 64 px² small, 16×16 = 256 px² medium, 30×30 = 900 px² large under ABS); at 64 px the
# scaled rule calls them medium (> 10.24), large (> 92.16) and large
GT_ABS = _gt([[(2 + i, 2, 8, 8, 1), (20, 4 + i, 16, 16, 1), (30, 30, 30, 30, 2)] for i in range(4)])
SMALL_ABS = {a["id"] for a in GT_ABS["annotations"] if a["area"] <= ABS[0]}


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_abs_areas_perfect_predictions_and_unchanged_headline(iou_type):
    res = _as_results(GT_ABS["annotations"])
    plain = evaluate(GT_ABS, res, iou_type=iou_type)
    m = evaluate(GT_ABS, res, iou_type=iou_type, abs_areas=ABS)
    assert list(m) == list(METRIC_NAMES) + list(ABS_METRIC_NAMES)
    np.testing.assert_equal({k: m[k] for k in METRIC_NAMES}, plain)     # exactly, NaN == NaN
    assert all(m[k] == 1.0 for k in ABS_METRIC_NAMES)
    assert math.isnan(m["AP_S"]) and m["AP_M"] == 1.0     # scaled rule: the 8×8 objects are medium at 64 px


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_missed_small_objects_lower_ap_s_abs_only(iou_type):
    # 2 of the 4 small objects missed: precision 1 up to recall 0.5 → 51 of 101 points in the small range
    res = _as_results([a for a in GT_ABS["annotations"] if a["id"] not in SMALL_ABS or a["image_id"] <= 2])
    plain = evaluate(GT_ABS, res, iou_type=iou_type)
    m = evaluate(GT_ABS, res, iou_type=iou_type, abs_areas=ABS)
    np.testing.assert_equal({k: m[k] for k in METRIC_NAMES}, plain)     # exactly, NaN == NaN
    assert m["AP_S_abs"] == pytest.approx(51 / 101) and m["AR_S_abs"] == pytest.approx(0.5)
    assert m["AP_M_abs"] == 1.0 and m["AP_L_abs"] == 1.0 and m["AR_M_abs"] == 1.0 and m["AR_L_abs"] == 1.0
    assert m["AP"] < 1.0 and m["AP_M"] == pytest.approx(51 / 101)   # scaled: the misses count as medium


def test_small_false_positive_lowers_ap_s_abs_only():
    fp = {"image_id": 1, "category_id": 1, "score": 0.9, "bbox": [50.0, 2.0, 6.0, 6.0],   # 36 px², unmatched
          "segmentation": _rle(50, 2, 6, 6)}
    m = evaluate(GT_ABS, _as_results(GT_ABS["annotations"], score=0.5) + [fp], abs_areas=ABS)
    # small range of class 1: the FP ranks first → precision 1/2 … 4/5, interpolated 0.8 everywhere
    assert m["AP_S_abs"] == pytest.approx(0.8)
    assert m["AP_M_abs"] == 1.0 and m["AP_L_abs"] == 1.0 and m["AR_S_abs"] == 1.0


def test_abs_areas_upper_bounds_are_inclusive_lower_bounds_exclusive():
    # 12×12 = 144 px² is small only, 24×24 = 576 px² medium only (COCO's own ranges overlap at the bounds)
    for side, size in ((12, "S"), (24, "M")):
        gt = _gt([[(10, 10, side, side, 1)]])
        m = evaluate(gt, _as_results(gt["annotations"]), abs_areas=ABS)
        assert m[f"AP_{size}_abs"] == pytest.approx(1.0)     # 1 / (1 + eps): COCOeval's precision
        assert sum(math.isnan(m[f"AP_{z}_abs"]) for z in "SML") == 2, m


def test_abs_areas_at_the_scaled_thresholds_reproduce_the_scaled_split():
    res = _as_results([a for a in GT_ABS["annotations"] if a["area"] != 256 or a["image_id"] == 1])
    m = evaluate(GT_ABS, res, abs_areas=(3.2**2, 9.6**2))      # = area_ranges(64); no area on a bound
    for k in ("AP_S", "AP_M", "AP_L", "AR_S", "AR_M", "AR_L"):
        assert m[f"{k}_abs"] == pytest.approx(m[k], nan_ok=True), k


def test_abs_areas_with_empty_predictions_and_in_evaluate_detections():
    m = evaluate(GT_ABS, [], abs_areas=ABS)
    assert all(m[k] == 0.0 for k in ABS_METRIC_NAMES)
    gt = _gt([[(10, 10, 8, 8, 1)]])                             # only a small object: M and L NaN
    m = evaluate(gt, [], abs_areas=ABS)
    assert m["AP_S_abs"] == 0.0 and math.isnan(m["AP_M_abs"]) and math.isnan(m["AR_L_abs"])
    d = evaluate_detections(GT_ABS, _as_results(GT_ABS["annotations"]), abs_areas=ABS)
    assert d["bbox_AP_S_abs"] == 1.0 and d["segm_AR_L_abs"] == 1.0 and "bbox_AP" in d
    assert not any(k.endswith("_abs") for k in evaluate_detections(GT_ABS, []))


@pytest.mark.parametrize("bad", [(576, 144), (144, 144), (0, 576), (-1, 576), (144,), (144, 576, 1000), "12",
                                 (144, float("nan"))])
def test_bad_abs_areas_are_named(bad):
    with pytest.raises(ValueError, match=r"abs_areas = .*expected"):
        evaluate(GT_ABS, _as_results(GT_ABS["annotations"]), abs_areas=bad)
    with pytest.raises(ValueError, match=r"abs_areas"):
        evaluate(GT_ABS, [], abs_areas=bad)


def _random_scene(seed, n_images=40, side=S):
    """Ground truth of 1-6 objects of 2 classes and sizes 3-40 px per image, and detections: each
    object found with jitter (some not at all), plus random false positives, random scores."""
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(n_images):
        objs = []
        for _ in range(rng.integers(1, 7)):
            w, h = (int(v) for v in rng.integers(3, 41, 2))
            x, y = (int(v) for v in rng.integers(0, side - 40, 2))
            objs.append((x, y, w, h, int(rng.integers(1, 3))))
        boxes.append(objs)
    gt = _gt(boxes, side)
    res = []
    for a in gt["annotations"]:
        if rng.random() < 0.8:
            x, y, w, h = (max(1, int(round(v + d))) for v, d in zip(a["bbox"], rng.normal(0, 2, 4)))
            res.append({"image_id": a["image_id"], "category_id": a["category_id"], "score": float(rng.random()),
                        "bbox": [x, y, w, h], "segmentation": _rle(x, y, min(w, side - x), min(h, side - y))})
    for i in range(n_images):
        for _ in range(rng.integers(0, 8)):
            w, h = (int(v) for v in rng.integers(2, 30, 2))
            x, y = (int(v) for v in rng.integers(0, side - 30, 2))
            res.append({"image_id": i + 1, "category_id": int(rng.integers(1, 3)), "score": float(rng.random()),
                        "bbox": [x, y, w, h], "segmentation": _rle(x, y, w, h)})
    return gt, res


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_faster_evaluator_gives_pycocotools_numbers_exactly(iou_type, seed):
    """The C++ evaluator (the default) and pycocotools' COCOeval agree to the last bits (a
    precision entry can differ by one ulp: the C++ code sums tp + fp + eps in another order),
    headline and absolute ranges; and ``summary_stats`` is pycocotools' own ``summarize``."""
    import contextlib
    import io

    from pycocotools.cocoeval import COCOeval

    from paperzoo.engine.coco_eval import load_coco_gt, summary_stats

    gt, res = _random_scene(seed)
    kw = dict(iou_type=iou_type, abs_areas=(144, 576))
    fast, slow = evaluate(gt, res, **kw), evaluate(gt, res, evaluator="pycocotools", **kw)
    assert 0.05 < slow["AP"] < 0.95                      # a scene neither empty nor perfect
    assert set(fast) == set(slow) == set(METRIC_NAMES + ABS_METRIC_NAMES)
    for k in slow:
        assert fast[k] == pytest.approx(slow[k], rel=1e-12, abs=1e-15, nan_ok=True), (k, fast[k], slow[k])
    coco = load_coco_gt(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        dets = [{k: v for k, v in r.items() if iou_type == "bbox" or k != "bbox"} for r in res]   # segm: mask areas
        ev = COCOeval(coco, coco.loadRes(dets), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert summary_stats(ev) == [float(v) for v in ev.stats]


def test_unknown_evaluator_is_named():
    with pytest.raises(ValueError, match="evaluator = 'x'"):
        evaluate(GT, _as_results(GT["annotations"]), evaluator="x")
