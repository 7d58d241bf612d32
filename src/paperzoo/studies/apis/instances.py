"""The APIS study's instances: the train and val objects of ``apis.dataset`` with their
masks and boxes, read by the steps (training, evaluation) and by the figures (the picture
of the selected points) alike.
"""
from __future__ import annotations


def load_instances(block: dict, data_dir):
    """(train, val) :class:`~.models.Instances` of ``apis.dataset`` (val: the first
    ``eval.n_val`` images; train: the first ``n_train`` or all)."""
    from paperzoo.data.shapes import load_shapes

    from .models import instances_from_detection

    train_set, val = load_shapes(data_dir, "train", masks=True), load_shapes(data_dir, "val", masks=True)
    x = train_set.images.float().div(255)
    mean, std = x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).tolist()
    n_train = block.get("n_train")
    if n_train is not None and n_train > len(train_set):
        raise ValueError(f"apis.n_train = {n_train} > {len(train_set)} train images in {data_dir}")
    return (instances_from_detection(train_set, mean, std, n_train),
            instances_from_detection(val, mean, std, int(block["eval"]["n_val"])))
