"""The procedural COCO-format `shapes` set: determinism, COCO validity, occlusion, in-memory loading."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from paperzoo.data import primitives
from paperzoo.data.generate import generate
from paperzoo.data.shapes import ShapesSpec, load_shapes, render, shapes_spec_from_config

from .conftest import SHAPES_TINY

# pycocotools 2.0.11 + numpy 2: harmless DeprecationWarning on every mask decode
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_same_seed_gives_identical_bytes(shapes_dir, tmp_path):
    again = generate("shapes", SHAPES_TINY, tmp_path / "again")
    first = json.loads((shapes_dir / "manifest.json").read_text())
    assert again["files"] == first["files"]          # every PNG, npy and JSON hashes the same
    assert (tmp_path / "again" / "manifest.json").read_bytes() == (shapes_dir / "manifest.json").read_bytes()
    other = generate("shapes", {**SHAPES_TINY, "seed": 4}, tmp_path / "other")
    assert other["files"]["train_images.npy"] != first["files"]["train_images.npy"]


def test_manifest_lists_every_file_with_counts(shapes_dir):
    m = json.loads((shapes_dir / "manifest.json").read_text())
    assert m["dataset"] == "shapes" and m["seed"] == 3 and m["params"] == SHAPES_TINY
    pngs = [f for f in m["files"] if f.endswith(".png")]
    assert len(pngs) == SHAPES_TINY["n_train"] + SHAPES_TINY["n_val"]
    assert {"annotations/instances_train.json", "annotations/instances_val.json", "train_images.npy",
            "val_images.npy"} <= set(m["files"])
    assert m["counts"]["train"]["images"] == 40 and m["counts"]["train"]["instances"] > 40


def test_regeneration_removes_stale_files(tmp_path):
    generate("shapes", {**SHAPES_TINY, "n_train": 6, "n_val": 2}, tmp_path)
    generate("shapes", {**SHAPES_TINY, "n_train": 3, "n_val": 2}, tmp_path)
    assert len(list((tmp_path / "train").glob("*.png"))) == 3
    assert not list(tmp_path.glob(".*.tmp*"))


@pytest.mark.parametrize("split", ["train", "val"])
def test_coco_json_is_valid_and_masks_match_areas_and_boxes(shapes_dir, split):
    ann_file = shapes_dir / "annotations" / f"instances_{split}.json"
    coco = COCO(str(ann_file))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == SHAPES_TINY["classes"]
    images = np.load(shapes_dir / f"{split}_images.npy")
    assert images.shape == (len(coco.imgs), 64, 64, 3) and images.dtype == np.uint8
    for img_id, info in coco.imgs.items():
        png = np.asarray(Image.open(shapes_dir / split / info["file_name"]))
        np.testing.assert_array_equal(png, images[img_id - 1])   # PNG and npy hold the same pixels
        anns = coco.imgToAnns[img_id]
        masks = [coco.annToMask(a) for a in anns]
        for a, m in zip(anns, masks):
            assert isinstance(a["segmentation"]["counts"], str) and a["iscrowd"] == 0
            assert m.sum() == a["area"] >= SHAPES_TINY["min_area"]
            ys, xs = np.nonzero(m)
            assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        if masks:   # visible masks of one image never share a pixel (occlusion resolved)
            assert np.stack(masks).sum(0).max() <= 1


def test_visible_mask_is_full_shape_minus_later_objects():
    """Two discs, the second on top: the first object's mask is its disc minus the second disc."""
    spec = ShapesSpec(classes=("disc",), min_objects=2, max_objects=2, min_size=20, max_size=20, aspect_min=1.0,
                      p_overlap=1.0, min_visible=0.0, min_area=1, texture_prob=0.0, noise_max=0.0, clutter_max=0)
    r = render(spec, 8, seed=0, split="occlusion")
    xs = np.arange(64) + 0.5
    from paperzoo.data.shapes import _draw_objects, _split_code

    p = _draw_objects(np.random.default_rng([0, _split_code("occlusion")]), spec, 8)
    u, v = primitives.object_frame(xs, xs, p["cx"], p["cy"], p["radius"], p["angle"], p["aspect"])
    full = primitives.shape_masks(np.zeros(len(p["cx"]), int), u, v)
    decoded = mask_utils.decode(r.rles).transpose(2, 0, 1).astype(bool)
    overlapped = 0
    for i in range(8):
        first, second = 2 * i, 2 * i + 1
        np.testing.assert_array_equal(decoded[second], full[second])
        np.testing.assert_array_equal(decoded[first], full[first] & ~full[second])
        overlapped += (full[first] & full[second]).any()
    assert overlapped >= 4      # p_overlap = 1 puts the second disc against the first


def test_heavily_occluded_objects_are_not_painted():
    spec = ShapesSpec(min_objects=4, max_objects=4, min_size=20, max_size=40, p_overlap=1.0, min_visible=0.9,
                      clutter_max=0)
    r = render(spec, 16, seed=1, split="x")
    assert r.n_dropped > 0
    assert len(r.rles) == 16 * 4 - r.n_dropped


def test_sizes_are_log_uniform_with_small_objects_common(shapes_dir):
    from paperzoo.data.shapes import _draw_objects

    p = _draw_objects(np.random.default_rng(0), ShapesSpec(min_size=4, max_size=32), 3000)
    octaves = np.histogram(2 * p["radius"], bins=[4, 8, 16, 32])[0] / p["radius"].size
    np.testing.assert_allclose(octaves, 1 / 3, atol=0.04)          # one third per octave: log-uniform
    # with the test config (5..32 px), COCO-"small" objects (scaled rule, area ≤ 10.24 px² at 64 px) are common
    areas = np.array([a["area"] for a in json.loads((shapes_dir / "annotations/instances_train.json").read_text())
                      ["annotations"]])
    assert (areas <= (32 * 64 / 640) ** 2).mean() > 0.04


def test_every_kind_renders_inside_its_circle():
    xs = np.arange(64) + 0.5
    n = len(primitives.KINDS)
    one = np.ones(n)
    u, v = primitives.object_frame(xs, xs, 32 * one, 32 * one, 20 * one, 0.7 * one, one)
    masks = primitives.shape_masks(np.arange(n), u, v)
    r2 = (xs[None, :] - 32) ** 2 + (xs[:, None] - 32) ** 2
    for k, name in enumerate(primitives.KINDS):
        assert masks[k].sum() > 50, name
        assert not (masks[k] & (r2 > 20.5**2)).any(), name
    fill = masks.sum((1, 2)) / (np.pi * 20**2)
    kinds = dict(zip(primitives.KINDS, fill))
    assert kinds["disc"] > 0.95 and kinds["bar"] < 0.2 and kinds["ring"] < 0.75


def test_spec_from_config_and_validation():
    spec = shapes_spec_from_config(SHAPES_TINY)
    assert spec.classes == tuple(SHAPES_TINY["classes"]) and spec.min_size == 5.0
    with pytest.raises(ValueError, match="unknown classes"):
        ShapesSpec(classes=("disc", "hexagon"))
    with pytest.raises(ValueError, match="min_size"):
        ShapesSpec(min_size=40, max_size=20)


def test_load_shapes_as_detection_set(shapes_dir):
    ds = load_shapes(shapes_dir, "val", masks=True)
    assert len(ds) == 12 and ds.images.shape == (12, 3, 64, 64) and ds.images.dtype == torch.uint8
    assert ds.category_ids == list(range(1, 9)) and ds.num_classes == 8
    coco = json.loads(ds.coco_path.read_text())
    n_anns = sum(len(t["labels"]) for t in ds.targets)
    assert n_anns == len(coco["annotations"])
    t = ds.targets[0]
    assert t["boxes"].dtype == torch.float32 and ((t["boxes"] >= 0) & (t["boxes"] <= 1)).all()
    assert t["masks"].shape == (len(t["labels"]), 64, 64) and t["orig_size"].tolist() == [64, 64]
    # cx, cy, w, h normalised ↔ COCO x, y, w, h px
    a = [x for x in coco["annotations"] if x["image_id"] == int(t["image_id"])][0]
    x, y, w, h = a["bbox"]
    torch.testing.assert_close(t["boxes"][0], torch.tensor([(x + w / 2) / 64, (y + h / 2) / 64, w / 64, h / 64]))


def test_detection_batches_in_memory_with_flip(shapes_dir):
    ds = load_shapes(shapes_dir, "train", masks=True)
    g = torch.Generator().manual_seed(0)
    seen, flipped = 0, 0
    for images, targets, pad_mask in ds.batches(16, generator=g, hflip=True):
        assert images.dtype == torch.float32 and images.shape[1:] == (3, 64, 64) and pad_mask is None
        assert 0.0 <= images.min() and images.max() <= 1.0
        for img, t in zip(images, targets):
            i = int(t["image_id"]) - 1
            orig, t0 = ds.images[i].float() / 255, ds.targets[i]
            if torch.equal(img, orig):
                assert t is t0
                continue
            flipped += 1
            torch.testing.assert_close(img, orig.flip(-1))
            assert torch.equal(t["masks"], t0["masks"].flip(-1))
            torch.testing.assert_close(t["boxes"][:, 0], 1 - t0["boxes"][:, 0])
            torch.testing.assert_close(t["boxes"][:, 1:], t0["boxes"][:, 1:])
        seen += len(targets)
    assert seen == 40 and 5 < flipped < 35


def test_cli_writes_dataset_and_manifest(tmp_path, capsys):
    from paperzoo.data.generate import main

    params = tmp_path / "params.json"
    params.write_text(json.dumps({**SHAPES_TINY, "n_train": 4, "n_val": 2}))
    main(["shapes", "--params", str(params), "--out-dir", str(tmp_path / "out")])
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["counts"]["train"]["images"] == 4 and "shapes: 10 files" in capsys.readouterr().out
    from paperzoo.data.store import sha256_file

    for rel, digest in m["files"].items():
        assert sha256_file(tmp_path / "out" / rel) == digest
    with pytest.raises(SystemExit):
        main(["pictures", "--params", "{}", "--out-dir", str(tmp_path)])


def test_shapes_dense_config_block_generates_coco_at_its_size(tmp_path):
    """The real ``data.shapes_dense`` block (config/config.yaml), shrunk, through ``generate``:
    images of the block's size, at most its ``max_objects`` per image, its 4 kinds."""
    from pathlib import Path

    from paperzoo.engine.io import read_yaml

    block = read_yaml(Path(__file__).resolve().parents[2] / "config" / "config.yaml")["data"]["shapes_dense"]
    size, lo, hi = block["image_size"], block["min_objects"], block["max_objects"]
    m = generate("shapes_dense", {**block, "n_train": 8, "n_val": 4}, tmp_path)
    assert m["dataset"] == "shapes_dense" and m["generator"] == "paperzoo.data.shapes"
    assert m["counts"]["train"]["images"] == 8 and m["counts"]["val"]["images"] == 4
    for split, n in (("train", 8), ("val", 4)):
        coco = json.loads((tmp_path / "annotations" / f"instances_{split}.json").read_text())
        assert len(coco["images"]) == n and all(im["width"] == im["height"] == size for im in coco["images"])
        assert [c["name"] for c in coco["categories"]] == ["disc", "square", "triangle", "ring"]
        per_image = np.bincount([a["image_id"] for a in coco["annotations"]], minlength=n + 1)[1:]
        assert per_image.max() <= hi and per_image.sum() >= lo * n * 0.7     # lo-hi drawn, a few lost to occlusion
        assert np.load(tmp_path / f"{split}_images.npy").shape == (n, size, size, 3)


def test_a_damaged_split_is_refused_with_the_file_and_the_way_out(tmp_path):
    """load_shapes checks the split's files against the manifest's SHA-256s: a changed images
    file or annotation file is an error naming it and how to regenerate, never silent data."""
    from paperzoo.data.generate import generate
    from paperzoo.data.shapes import DamagedDataError, load_shapes
    from paperzoo.engine.io import read_yaml

    block = read_yaml(Path(__file__).resolve().parents[2] / "config" / "config.yaml")["data"]["shapes_easy"]
    generate("shapes_easy", {**block, "n_train": 6, "n_val": 3}, tmp_path)
    assert len(load_shapes(tmp_path, "train")) == 6
    npy = tmp_path / "train_images.npy"
    raw = bytearray(npy.read_bytes())
    raw[-1] ^= 0xFF                                      # one flipped byte
    npy.write_bytes(bytes(raw))
    with pytest.raises(DamagedDataError, match=r"train_images\.npy: SHA-256 .* differs .* Delete .* rerun"):
        load_shapes(tmp_path, "train")
    assert len(load_shapes(tmp_path, "val")) == 3      # the other split is intact
    (tmp_path / "annotations" / "instances_val.json").unlink()
    with pytest.raises(DamagedDataError, match=r"instances_val\.json: missing"):
        load_shapes(tmp_path, "val")
    (tmp_path / "manifest.json").unlink()              # a hand-made fixture without manifest: not checked
    assert len(load_shapes(tmp_path, "train")) == 6
