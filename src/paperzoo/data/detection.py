"""Train / val detection sets of the detector studies (kd_detr, cfnet, and later ones).

    train_set, val, mean, std = load_detection(data_dir, dataset, n_val, coco_size)

``shapes*``: the DAG's procedural sets (:mod:`.shapes`), held in memory; ``mean``/``std`` are
the train images' per-channel statistics of [0, 1] pixels. ``coco``: COCO 2017 under
``data_dir`` read lazily, every image squashed to ``coco_size`` ² (:class:`.coco.SquareCocoSet`:
no padding masks; a deviation each study records), ImageNet statistics (the pretrained
backbones'). ``val`` is cut to its first ``n_val`` images.
"""
from __future__ import annotations

import os


def load_detection(data_dir: str | os.PathLike, dataset: str, n_val: int, coco_size: int = 800, *,
                   study: str = "detection"):
    """``(train_set, val, mean, std)`` (module doc); ``study`` names the caller in errors."""
    if dataset == "coco":
        from .coco import IMAGENET_MEAN, IMAGENET_STD, SquareCocoSet

        train_set = SquareCocoSet(data_dir, "train2017", coco_size)
        val = SquareCocoSet(data_dir, "val2017", coco_size)
        return train_set, val.subset(range(min(n_val, len(val)))), list(IMAGENET_MEAN), list(IMAGENET_STD)
    if not dataset.startswith("shapes"):
        raise ValueError(f"{study}: dataset {dataset!r}: expected a procedural shapes variant "
                         "(shapes, shapes_easy, shapes_kd, shapes_dense, ...) or coco")
    from .shapes import load_shapes

    train_set, val = load_shapes(data_dir, "train"), load_shapes(data_dir, "val")
    val = val.subset(range(min(n_val, len(val))))
    x = train_set.images.float().div(255)
    return train_set, val, x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).tolist()
