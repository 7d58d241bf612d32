"""In-memory datasets and batch helpers shared by every study.

Embedded scales keep whole datasets in memory as uint8 tensors and cut batches by
indexing: no ``DataLoader``, no worker processes (the 2 CPU cores are the bottleneck).
Images are converted to float only per batch.

* :class:`ClassificationSet` — ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)
* :class:`DetectionSet` — ``images`` uint8 (N, 3, H, W) and one target dict per image
  in DETR's convention (boxes normalised ``cx, cy, w, h``)
* :class:`DetectionBatch` — what every detection batch iterator yields, in memory or
  from real COCO (:mod:`.coco`): ``images`` float (B, 3, H, W), ``targets``,
  ``pad_mask`` bool (B, H, W) True on padding (None when no image was padded)
* :class:`StepBatches` — step ``i`` → batch of a :class:`DetectionSet`, a function of
  ``(seed, i)`` only (what ``engine.train.train`` wants: resumed runs stay bit-identical)

On-disk format: :mod:`.store` (written without importing torch).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch

from paperzoo.engine.images import to_float  # the studies import it from here too


def batch_indices(n: int, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                  drop_last: bool = False) -> Iterator[torch.Tensor]:
    """Index tensors of successive batches over ``range(n)`` (a seeded permutation if ``shuffle``)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        yield order[i:i + batch_size]


# --- classification ------------------------------------------------------------------------

@dataclass
class ClassificationSet:
    """Images, labels and class names of one split, all in memory."""

    images: torch.Tensor          # (N, C, H, W) uint8
    labels: torch.Tensor          # (N,) int64 in [0, num_classes)
    class_names: list[str]

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels {tuple(self.labels.shape)} do not match {self.images.shape[0]} images")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, index: torch.Tensor | Sequence[int]) -> "ClassificationSet":
        index = torch.as_tensor(index, dtype=torch.long)
        return ClassificationSet(self.images[index], self.labels[index], list(self.class_names))

    def select_classes(self, labels: Sequence[int]) -> "ClassificationSet":
        """The samples whose label is in ``labels`` (labels keep their global values, as in CIL)."""
        keep = torch.isin(self.labels, torch.as_tensor(list(labels), dtype=torch.long))
        return self.subset(torch.nonzero(keep).flatten())

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False, mean=None, std=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x float (B, C, H, W), y int64 (B,))``; see :func:`to_float` for ``mean, std``."""
        for idx in batch_indices(len(self), batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last):
            yield to_float(self.images[idx], mean, std), self.labels[idx]


def class_incremental_tasks(num_classes: int, classes_per_task: int) -> list[list[int]]:
    """Consecutive label groups ``[[0..c-1], [c..2c-1], ...]``; the class order is fixed at generation."""
    if num_classes % classes_per_task:
        raise ValueError(f"{num_classes} classes do not split into tasks of {classes_per_task}")
    return [list(range(t, t + classes_per_task)) for t in range(0, num_classes, classes_per_task)]


def load_classification(root: str | os.PathLike, split: str) -> ClassificationSet:
    """Load a split written by ``paperzoo.data.generate classes|digits``."""
    root = Path(root)
    meta = json.loads((root / "classes.json").read_text())
    if split not in meta["splits"]:
        raise KeyError(f"{root}: no split {split!r}; have {sorted(meta['splits'])}")
    images = torch.from_numpy(np.load(root / f"{split}_images.npy")).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(np.load(root / f"{split}_labels.npy"))
    return ClassificationSet(images, labels, list(meta["splits"][split]["class_names"]))


# --- detection -------------------------------------------------------------------------------

class DetectionBatch(NamedTuple):
    """One detection batch (unpacks as ``images, targets, pad_mask``)."""

    images: torch.Tensor                 # (B, 3, H, W) float32
    targets: list[dict]                  # per image, see DetectionSet
    pad_mask: torch.Tensor | None        # (B, H, W) bool, True on padding; None if nothing padded


def xywh_to_cxcywh_norm(boxes_xywh: np.ndarray, width: float, height: float) -> np.ndarray:
    """COCO [x, y, w, h] in px → [cx, cy, w, h] normalised by the image size (DETR targets)."""
    b = np.asarray(boxes_xywh, np.float32).reshape(-1, 4)
    out = np.stack([(b[:, 0] + b[:, 2] / 2) / width, (b[:, 1] + b[:, 3] / 2) / height,
                    b[:, 2] / width, b[:, 3] / height], 1)
    return out.astype(np.float32)


@dataclass
class DetectionSet:
    """Images and DETR-style targets of one split, all in memory.

    Each ``targets[i]`` holds ``boxes`` float32 (n, 4) normalised ``cx, cy, w, h``;
    ``labels`` int64 (n,) contiguous class index; ``image_id`` int64 (COCO id);
    ``orig_size`` and ``size`` int64 (2,) as ``(h, w)``; ``masks`` bool (n, H, W) if loaded.
    ``category_ids[label]`` is the COCO ``category_id`` (for evaluation), and
    ``coco_path`` the ground-truth COCO JSON.
    """

    images: torch.Tensor                   # (N, 3, H, W) uint8
    targets: list[dict]
    class_names: list[str]
    category_ids: list[int]
    coco_path: Path | None = None
    image_ids: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, index: Sequence[int]) -> "DetectionSet":
        index = [int(i) for i in index]
        return DetectionSet(self.images[torch.as_tensor(index, dtype=torch.long)], [self.targets[i] for i in index],
                            list(self.class_names), list(self.category_ids), self.coco_path,
                            [self.image_ids[i] for i in index])

    @classmethod
    def from_coco(cls, coco_json: str | os.PathLike, images_nhwc: np.ndarray, *, masks: bool = False) -> "DetectionSet":
        """Targets from a COCO JSON whose ``images`` list is in the same order as ``images_nhwc``.

        Crowd annotations are skipped (as in DETR's training targets).
        """
        from pycocotools import mask as mask_utils

        coco_json = Path(coco_json)
        d = json.loads(coco_json.read_text())
        if len(d["images"]) != len(images_nhwc):
            raise ValueError(f"{coco_json}: {len(d['images'])} images in JSON, {len(images_nhwc)} in the array")
        cats = sorted(d["categories"], key=lambda c: c["id"])
        cat_to_label = {c["id"]: i for i, c in enumerate(cats)}
        by_image: dict[int, list[dict]] = {im["id"]: [] for im in d["images"]}
        for a in d["annotations"]:
            if not a.get("iscrowd", 0):
                by_image[a["image_id"]].append(a)
        targets = []
        for im in d["images"]:
            anns = by_image[im["id"]]
            h, w = im["height"], im["width"]
            t = {"boxes": torch.from_numpy(xywh_to_cxcywh_norm([a["bbox"] for a in anns], w, h)),
                 "labels": torch.tensor([cat_to_label[a["category_id"]] for a in anns], dtype=torch.int64),
                 "image_id": torch.tensor(im["id"], dtype=torch.int64),
                 "orig_size": torch.tensor([h, w], dtype=torch.int64), "size": torch.tensor([h, w], dtype=torch.int64)}
            if masks:
                if anns:
                    m = mask_utils.decode([a["segmentation"] for a in anns])            # (H, W, n)
                    t["masks"] = torch.from_numpy(np.ascontiguousarray(m.transpose(2, 0, 1))).bool()
                else:
                    t["masks"] = torch.zeros((0, h, w), dtype=torch.bool)
            targets.append(t)
        images = torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2).contiguous()
        return cls(images, targets, [c["name"] for c in cats], [c["id"] for c in cats], coco_json,
                   [im["id"] for im in d["images"]])

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False, hflip: bool = False, mean=None, std=None) -> Iterator[DetectionBatch]:
        """Yield :class:`DetectionBatch` es; ``hflip`` flips each image with probability 1/2 (boxes, masks too)."""
        for idx in batch_indices(len(self), batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last):
            images = self.images[idx]
            targets = [self.targets[int(i)] for i in idx]
            if hflip:
                flip = torch.rand(len(idx), generator=generator) < 0.5
                images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
                targets = [hflip_target(t) if f else t for t, f in zip(targets, flip.tolist())]
            yield DetectionBatch(to_float(images, mean, std), targets, None)


class StepBatches:
    """Step-indexed detection batches: ``batches(i)`` → ``(images, targets, i)``.

    ``images`` float32 (B, 3, H, W), ``to_float`` of the uint8 images with per-channel
    ``mean, std`` (of [0, 1] pixels); ``targets`` one ``{"labels" int64 (n,), "boxes"
    float32 (n, 4) normalised cx, cy, w, h}`` per image. Sample order: a fresh seeded
    permutation per epoch (``engine.train.IndexBatches``, last incomplete batch dropped);
    with ``hflip`` each image is flipped horizontally with probability 1/2, drawn from
    ``engine.train.step_generator(seed, i)``. So step ``i``'s batch depends on
    ``(seed, i)`` only — not on the call order nor the global RNG — and every arm run
    with the same seed sees the same images.
    ``dset``: anything with ``images`` uint8 (N, 3, H, W) and ``targets`` (a :class:`DetectionSet`).
    """

    def __init__(self, dset, batch_size: int, seed: int, mean, std, hflip: bool = True):
        from paperzoo.engine.train import IndexBatches

        self.dset, self.seed, self.mean, self.std, self.hflip = dset, seed, mean, std, hflip
        self.sampler = IndexBatches(len(dset), batch_size, seed)

    def __call__(self, i: int) -> tuple[torch.Tensor, list[dict], int]:
        from paperzoo.engine.train import step_generator

        idx = self.sampler(i)                                                             # (B,)
        if self.hflip:
            flip = torch.rand(len(idx), generator=step_generator(self.seed, i)) < 0.5  # (B,)
        else:
            flip = torch.zeros(len(idx), dtype=torch.bool)
        imgs = self.dset.images[idx]
        imgs = torch.where(flip.view(-1, 1, 1, 1), imgs.flip(-1), imgs)
        tgts = [hflip_target(self.dset.targets[j]) if f else self.dset.targets[j]
                for f, j in zip(flip.tolist(), idx.tolist())]
        return to_float(imgs, self.mean, self.std), [{"labels": t["labels"], "boxes": t["boxes"]} for t in tgts], i


def hflip_target(t: dict) -> dict:
    """A target of the horizontally flipped image (normalised cx → 1 − cx; masks flipped)."""
    out = dict(t)
    b = t["boxes"].clone()
    b[:, 0] = 1.0 - b[:, 0]
    out["boxes"] = b
    if "masks" in t:
        out["masks"] = t["masks"].flip(-1)
    return out
