import numpy as np

from paperzoo.data.semantickitti import SPLITS, SemanticKittiScans, learning_map, read_labels, write_fixture
from paperzoo.data.synthscan import CLASSES, SynthScanSpec, load_synthscan, render_split, write_synthscan

SPEC = SynthScanSpec(beams=16, azimuths=256)


def test_deterministic_and_independent_of_count(tmp_path):
    a = render_split(SPEC, 3, seed=1, split="train")
    b = render_split(SPEC, 2, seed=1, split="train")
    assert np.array_equal(a[0][:a[2][2]], b[0]) and np.array_equal(a[1][:a[2][2]], b[1])
    c = render_split(SPEC, 2, seed=2, split="train")
    assert not np.array_equal(b[1], c[1])
    m1 = write_synthscan(tmp_path / "x", SPEC, seed=1, splits={"train": 2, "val": 1})
    m2 = write_synthscan(tmp_path / "y", SPEC, seed=1, splits={"train": 2, "val": 1})
    assert m1 == m2
    for f in ("train_points.npy", "train_labels.npy", "train_offsets.npy", "classes.json"):
        assert (tmp_path / "x" / f).read_bytes() == (tmp_path / "y" / f).read_bytes()
    scans = load_synthscan(tmp_path / "x", "train")
    assert len(scans) == 2 and scans[0][0].shape[1] == 4


def test_class_coverage_and_geometry():
    pts, lab, off = render_split(SPEC, 6, seed=0, split="val")
    counts = np.bincount(lab, minlength=len(CLASSES) + 1)
    assert (counts[1:] > 0).all(), counts
    road_z = pts[lab == 1, 2]
    side_z = pts[lab == 2, 2]
    assert abs(np.median(road_z) + SPEC.sensor_height) < 0.05
    assert np.median(side_z) - np.median(road_z) > 0.1                           # sidewalk above road
    r = np.linalg.norm(pts[:, :3], axis=1)
    assert r.max() < SPEC.max_range + 0.2 and 0 <= pts[:, 3].min() and pts[:, 3].max() <= 1


def test_semantickitti_fixture(tmp_path):
    root = write_fixture(tmp_path, sequences=("00", "08"), frames=2, points=300)
    train, val = SemanticKittiScans(root, "train"), SemanticKittiScans(root, "val")
    assert len(train) == 2 and len(val) == 2 and "08" in SPLITS["val"] and "08" not in SPLITS["train"]
    pts, lab = val[0]
    assert pts.dtype == np.float32 and pts.shape == (300, 4)
    sem, inst = read_labels(root / "sequences/08/labels/000000.label")
    assert sem.max() < 1 << 16 and inst.max() > 0                                # instance bits are masked off
    assert np.array_equal(lab, learning_map(sem)) and lab.min() == 0 and lab.max() == 19
    assert learning_map(np.array([10, 252, 40, 60, 52, 77, 99, 81])).tolist() == [1, 1, 9, 9, 0, 0, 0, 19]


def test_one_ray_per_range_view_pixel():
    import torch

    from paperzoo.layers.point_grid import flat_index, rv_coords

    pts, _, _ = render_split(SPEC, 1, seed=3, split="train")
    idx = flat_index(rv_coords(torch.from_numpy(pts[None, :, :3]), SPEC.fov_deg, (SPEC.beams, SPEC.azimuths)),
                     (SPEC.beams, SPEC.azimuths))
    assert (idx >= 0).all() and len(torch.unique(idx)) == len(pts)
