"""``digits``: scikit-learn's bundled ``load_digits`` through the classification interface.

1797 real 8×8 grey images of handwritten digits (UCI optdigits test set), 10 classes,
shipped inside the scikit-learn wheel, so it loads offline.
Pixel values 0..16 become uint8 ``round(x * 255 / 16)``; ``upsample`` repeats pixels
(nearest neighbour, e.g. 2 → 16×16 for a patch-4 ViT) and ``channels`` = 3 copies the grey
channel for RGB models. The train/test split is stratified and seeded: per class, a
seeded permutation, the first ``round(test_fraction * n_class)`` images go to ``test``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from paperzoo.engine.io import write_json

from .store import save_classification

CLASS_NAMES = [str(d) for d in range(10)]


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The raw set: images uint8 (1797, 8, 8) in 0..255 and labels int64 (1797,)."""
    from sklearn.datasets import load_digits  # imported here: sklearn costs ~1 s to import

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)
    return images, d.target.astype(np.int64)


def stratified_split(labels: np.ndarray, test_fraction: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test indices, ``round(test_fraction * n_c)`` test images per class."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(test_fraction * idx.size))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def prepare(images: np.ndarray, *, upsample: int = 1, channels: int = 1) -> np.ndarray:
    """(N, 8, 8) uint8 → (N, 8·upsample, 8·upsample, channels) uint8 (NHWC, as on disk)."""
    if upsample < 1 or channels not in (1, 3):
        raise ValueError(f"digits: upsample >= 1 and channels in (1, 3), got {upsample}, {channels}")
    x = images.repeat(upsample, axis=1).repeat(upsample, axis=2)[..., None]
    return np.ascontiguousarray(np.repeat(x, channels, axis=3))


def write_digits(root: str | os.PathLike, *, test_fraction: float, upsample: int, channels: int, seed: int) -> dict:
    """Write ``train`` and ``test`` splits and ``classes.json``; returns counts for the manifest."""
    root = Path(root)
    images, labels = load_digits_arrays()
    train, test = stratified_split(labels, test_fraction, seed=seed)
    splits = {}
    for split, idx in (("train", train), ("test", test)):
        save_classification(root, split, prepare(images[idx], upsample=upsample, channels=channels), labels[idx])
        splits[split] = {"class_names": CLASS_NAMES, "n": int(idx.size)}
    write_json(root / "classes.json", {"dataset": "digits", "source": "sklearn.datasets.load_digits",
                                       "splits": splits})
    return {split: v["n"] for split, v in splits.items()}
