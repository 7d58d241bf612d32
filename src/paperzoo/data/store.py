"""On-disk format of the generated datasets (numpy only; no torch import on this path).

A classification split is ``<root>/<split>_images.npy`` (uint8 N, H, W, C) and
``<root>/<split>_labels.npy`` (int64 N), with class names per split in ``<root>/classes.json``.
Shapes images sit in ``<root>/<split>_images.npy`` next to their PNGs. ``.npy`` rather than
``.npz``: ``np.savez`` stamps the current time into its zip headers, so identical arrays
would not give identical bytes.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from paperzoo.engine.io import atomic_path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` atomically (byte-identical for identical arrays)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)


def save_classification(root: str | os.PathLike, split: str, images_nhwc: np.ndarray, labels: np.ndarray) -> list[Path]:
    """Write ``<split>_images.npy`` (uint8 N, H, W, C) and ``<split>_labels.npy`` atomically."""
    root = Path(root)
    paths = [root / f"{split}_images.npy", root / f"{split}_labels.npy"]
    save_npy(paths[0], np.ascontiguousarray(images_nhwc, dtype=np.uint8))
    save_npy(paths[1], np.asarray(labels, dtype=np.int64))
    return paths
