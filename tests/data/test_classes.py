"""The many-class procedural set and the digits set share one classification interface."""
import json

import numpy as np
import pytest
import torch

from paperzoo.data.classes import ClassesSpec, class_name, render, split_classes
from paperzoo.data.generate import generate
from paperzoo.data.sets import ClassificationSet, class_incremental_tasks, load_classification

from .conftest import CLASSES_TINY, DIGITS


@pytest.fixture(scope="module")
def classes_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("classes")
    generate("classes", CLASSES_TINY, out)
    return out


def test_upstream_and_downstream_classes_are_disjoint(classes_dir):
    meta = json.loads((classes_dir / "classes.json").read_text())
    up, down = set(meta["upstream"]), set(meta["downstream"])
    assert len(meta["classes"]) == 144 and len(up) == 100 and len(down) == 40 and not up & down
    names = {c["name"] for c in meta["classes"]}
    assert len(names) == 144                               # every class a distinct (kind, texture, layout)
    for split in ("upstream_train", "upstream_test"):
        assert set(meta["splits"][split]["global_ids"]) == up
    assert not set(meta["splits"]["upstream_train"]["class_names"]) & set(meta["splits"]["downstream_train"]["class_names"])


def test_split_classes_is_seeded_and_disjoint():
    assert split_classes(144, 100, 40, class_seed=0) == split_classes(144, 100, 40, class_seed=0)
    assert split_classes(144, 100, 40, class_seed=0) != split_classes(144, 100, 40, class_seed=1)
    with pytest.raises(ValueError, match="> 144 classes"):
        split_classes(144, 100, 50, class_seed=0)


def test_load_classification_split(classes_dir):
    ds = load_classification(classes_dir, "downstream_train")
    assert isinstance(ds, ClassificationSet) and ds.num_classes == 40 and len(ds) == 80
    assert ds.images.shape == (80, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert torch.equal(torch.bincount(ds.labels), torch.full((40,), 2))
    tasks = class_incremental_tasks(ds.num_classes, 4)
    assert len(tasks) == 10 and tasks[1] == [4, 5, 6, 7]
    task = ds.select_classes(tasks[1])
    assert len(task) == 8 and set(task.labels.tolist()) == {4, 5, 6, 7}
    x, y = next(task.batches(5, shuffle=True, generator=torch.Generator().manual_seed(0),
                             mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32 and -1 <= x.min() and x.max() <= 1
    with pytest.raises(KeyError, match="no split"):
        load_classification(classes_dir, "pretrain")


def test_classes_deterministic_and_nuisance_varies():
    spec = ClassesSpec()
    a, la = render(spec, [0, 5], 6, seed=1, split="s")
    b, lb = render(spec, [0, 5], 6, seed=1, split="s")
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    c, _ = render(spec, [0, 5], 6, seed=1, split="t")
    assert not np.array_equal(a, c)
    same_class = a[la == 0]
    assert len({im.tobytes() for im in same_class}) == len(same_class)   # position/scale/colour jitter
    assert class_name(*spec.vocabulary()[0]) == "disc-solid-red_on_dark"


def test_digits_through_the_same_interface(tmp_path):
    pytest.importorskip("sklearn")
    m = generate("digits", DIGITS, tmp_path)
    assert m["counts"] == {"train": 1438, "test": 359}
    train, test = load_classification(tmp_path, "train"), load_classification(tmp_path, "test")
    assert train.images.shape == (1438, 3, 16, 16) and test.images.shape == (359, 3, 16, 16)
    assert train.class_names == [str(d) for d in range(10)]
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    # stratified: every class is in both splits in the same proportion (±1 image)
    n_tr, n_te = torch.bincount(train.labels), torch.bincount(test.labels)
    assert ((n_te.float() / (n_tr + n_te).float() - 0.2).abs() < 0.01).all()
    # upsampling repeats pixels: 2×2 blocks are constant, channels are copies
    assert torch.equal(train.images[:, :, 0::2, 0::2], train.images[:, :, 1::2, 1::2])
    assert torch.equal(train.images[:, 0], train.images[:, 2])
    again = generate("digits", DIGITS, tmp_path / "again")
    assert again["files"] == m["files"]


def test_upstream_train_size_is_separate_and_leaves_downstream_unchanged(tmp_path):
    from paperzoo.data.classes import write_classes
    from paperzoo.data.generate import classes_from_config
    from tests.data.conftest import CLASSES_TINY

    kw = classes_from_config(CLASSES_TINY)
    a = write_classes(tmp_path / "a", **kw)
    b = write_classes(tmp_path / "b", **{**kw, "n_upstream_train_per_class": 5})
    assert a["upstream_train"] == 3 * 100 and b["upstream_train"] == 5 * 100
    for split in ("downstream_train", "downstream_test", "upstream_test"):
        assert np.array_equal(np.load(tmp_path / "a" / f"{split}_images.npy"),
                              np.load(tmp_path / "b" / f"{split}_images.npy"))
