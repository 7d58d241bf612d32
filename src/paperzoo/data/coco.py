"""Real COCO (``paper`` scale): COCO JSON + image files with DETR's standard augmentations.

Follows facebookresearch/detr ``datasets/coco.py`` and ``datasets/transforms.py``:

* targets: crowd annotations dropped, boxes ``[x, y, w, h]`` → ``x0, y0, x1, y1`` clipped to
  the image, degenerate boxes dropped, polygons / RLE → masks (``return_masks``);
* train: random horizontal flip (p = 0.5), then with p = 0.5 either a multi-scale resize
  (shorter side drawn from ``train_scales``, longer side ≤ ``max_size``) or resize to one
  of ``crop_scales`` → random crop of ``crop_min..crop_max`` px → multi-scale resize;
* val: resize to shorter side ``val_size`` (longer ≤ ``max_size``);
* then to float, ImageNet mean/std normalisation, and boxes as normalised ``cx, cy, w, h``.

Targets use the same keys as :class:`.sets.DetectionSet` (``boxes``, ``labels`` contiguous
0..K-1 with ``category_ids[label]`` the COCO id, ``masks``, ``image_id``, ``orig_size``,
``size``, plus ``area`` and ``iscrowd``) and batches are :class:`.sets.DetectionBatch`
es, padded to the largest image of the batch with ``pad_mask`` True on padding. Randomness
comes from torch's global generator (seeded by ``seed_everything``; DataLoader workers
derive their own) or an explicit ``torch.Generator``.

The shapes set is written in COCO's layout too, so ``CocoDetection`` also reads it.
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pycocotools.coco import COCO

from .sets import DetectionBatch, batch_indices

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DETR_TRAIN_SCALES = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)


def _randint(lo: int, hi: int, g: torch.Generator | None) -> int:
    """Uniform integer in [lo, hi] (inclusive)."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _choice(options: Sequence, g: torch.Generator | None):
    return options[_randint(0, len(options) - 1, g)]


# --- functional transforms on (image uint8 (3, H, W), target with absolute x0 y0 x1 y1 boxes) ---

def hflip(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    w = image.shape[-1]
    t = dict(target)
    if "boxes" in t:
        b = t["boxes"]
        t["boxes"] = torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], 1)
    if "masks" in t:
        t["masks"] = t["masks"].flip(-1)
    return image.flip(-1), t


def size_with_aspect_ratio(h: int, w: int, size: int, max_size: int | None) -> tuple[int, int]:
    """DETR's rule: shorter side → ``size``, unless the longer side would exceed ``max_size``."""
    if max_size is not None:
        lo, hi = float(min(h, w)), float(max(h, w))
        if hi / lo * size > max_size:
            size = int(round(max_size * lo / hi))
    if (w <= h and w == size) or (h <= w and h == size):
        return h, w
    if w < h:
        return int(size * h / w), size
    return size, int(size * w / h)


def resize(image: torch.Tensor, target: dict, size: int, max_size: int | None) -> tuple[torch.Tensor, dict]:
    h, w = image.shape[-2:]
    oh, ow = size_with_aspect_ratio(h, w, size, max_size)
    out = F.interpolate(image[None].float(), size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)
    image = out[0].round().clamp(0, 255).to(torch.uint8)
    t = dict(target)
    rh, rw = oh / h, ow / w
    if "boxes" in t:
        t["boxes"] = t["boxes"] * torch.tensor([rw, rh, rw, rh])
    if "area" in t:
        t["area"] = t["area"] * (rw * rh)
    if "masks" in t and t["masks"].numel():
        t["masks"] = F.interpolate(t["masks"][:, None].float(), size=(oh, ow), mode="nearest")[:, 0] > 0.5
    elif "masks" in t:
        t["masks"] = torch.zeros((0, oh, ow), dtype=torch.bool)
    t["size"] = torch.tensor([oh, ow])
    return image, t


def crop(image: torch.Tensor, target: dict, top: int, left: int, h: int, w: int) -> tuple[torch.Tensor, dict]:
    """Crop; boxes are shifted and clipped, and instances left with no box area are dropped."""
    t = dict(target)
    keep = None
    if "boxes" in t:
        b = t["boxes"] - torch.tensor([left, top, left, top], dtype=t["boxes"].dtype)
        b = torch.minimum(b.reshape(-1, 2, 2), torch.tensor([w, h], dtype=b.dtype)).clamp(min=0)
        keep = torch.all(b[:, 1, :] > b[:, 0, :], dim=1)
        t["area"] = (b[:, 1, :] - b[:, 0, :]).prod(dim=1)
        t["boxes"] = b.reshape(-1, 4)
    if "masks" in t:
        t["masks"] = t["masks"][:, top:top + h, left:left + w]
    if keep is not None:
        for k in ("boxes", "labels", "area", "iscrowd", "masks"):
            if k in t:
                t[k] = t[k][keep]
    t["size"] = torch.tensor([h, w])
    return image[:, top:top + h, left:left + w], t


def normalize(image: torch.Tensor, target: dict, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> tuple[torch.Tensor, dict]:
    """uint8 → normalised float; absolute ``x0 y0 x1 y1`` → normalised ``cx cy w h``."""
    x = image.float() / 255.0
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    h, w = image.shape[-2:]
    t = dict(target)
    if "boxes" in t:
        b = t["boxes"]
        t["boxes"] = torch.stack([(b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h,
                                  (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h], 1)
    return x, t


class DetrTransforms:
    """DETR's ``make_coco_transforms`` as one callable ``(image uint8, target) → (float image, target)``."""

    def __init__(self, train: bool, *, train_scales: Sequence[int] = DETR_TRAIN_SCALES, max_size: int = 1333,
                 crop_scales: Sequence[int] = (400, 500, 600), crop_min: int = 384, crop_max: int = 600,
                 val_size: int = 800, mean=IMAGENET_MEAN, std=IMAGENET_STD, generator: torch.Generator | None = None):
        self.train, self.train_scales, self.max_size = train, list(train_scales), max_size
        self.crop_scales, self.crop_min, self.crop_max, self.val_size = list(crop_scales), crop_min, crop_max, val_size
        self.mean, self.std, self.g = mean, std, generator

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        g = self.g
        if not self.train:
            image, target = resize(image, target, self.val_size, self.max_size)
            return normalize(image, target, self.mean, self.std)
        if torch.rand((), generator=g) < 0.5:
            image, target = hflip(image, target)
        if torch.rand((), generator=g) < 0.5:
            image, target = resize(image, target, _choice(self.train_scales, g), self.max_size)
        else:
            image, target = resize(image, target, _choice(self.crop_scales, g), None)
            h, w = image.shape[-2:]
            ch = _randint(self.crop_min, min(h, self.crop_max), g) if h > self.crop_min else h
            cw = _randint(self.crop_min, min(w, self.crop_max), g) if w > self.crop_min else w
            top, left = _randint(0, h - ch, g), _randint(0, w - cw, g)
            image, target = crop(image, target, top, left, ch, cw)
            image, target = resize(image, target, _choice(self.train_scales, g), self.max_size)
        return normalize(image, target, self.mean, self.std)


class CocoDetection(torch.utils.data.Dataset):
    """COCO images + targets (a map-style Dataset; also batches in-process via :meth:`batches`)."""

    def __init__(self, img_folder: str | os.PathLike, ann_file: str | os.PathLike,
                 transforms: Callable | None = None, *, return_masks: bool = False):
        self.img_folder, self.ann_file = Path(img_folder), Path(ann_file)
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco = COCO(str(ann_file))
        self.ids = sorted(self.coco.imgs)
        cats = sorted(self.coco.cats)
        self.category_ids = cats
        self.class_names = [self.coco.cats[c]["name"] for c in cats]
        self._label = {c: i for i, c in enumerate(cats)}
        self.transforms, self.return_masks = transforms, return_masks

    @property
    def coco_path(self) -> Path:
        return self.ann_file

    def __len__(self) -> int:
        return len(self.ids)

    def load_target(self, image_id: int, h: int, w: int) -> dict:
        """DETR's ``ConvertCocoPolysToMask``: absolute ``x0 y0 x1 y1`` boxes, no crowd, no empty boxes."""
        anns = [a for a in self.coco.imgToAnns[image_id] if not a.get("iscrowd", 0)]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2].clamp_(0, w)
        boxes[:, 1::2].clamp_(0, h)
        keep = (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0])
        t = {"boxes": boxes[keep],
             "labels": torch.tensor([self._label[a["category_id"]] for a in anns], dtype=torch.int64)[keep],
             "area": torch.tensor([a["area"] for a in anns], dtype=torch.float32)[keep],
             "iscrowd": torch.zeros(int(keep.sum()), dtype=torch.int64),
             "image_id": torch.tensor(image_id), "orig_size": torch.tensor([h, w]), "size": torch.tensor([h, w])}
        if self.return_masks:
            m = [self.coco.annToMask(a) for a, k in zip(anns, keep.tolist()) if k]
            t["masks"] = (torch.from_numpy(np.stack(m)).bool() if m else torch.zeros((0, h, w), dtype=torch.bool))
        return t

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict]:
        image_id = self.ids[i]
        info = self.coco.imgs[image_id]
        with Image.open(self.img_folder / info["file_name"]) as im:
            image = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1).contiguous()
        target = self.load_target(image_id, image.shape[1], image.shape[2])
        if self.transforms is not None:
            return self.transforms(image, target)
        return normalize(image, target)

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False) -> Iterator[DetectionBatch]:
        """In-process batches (no workers), as :meth:`.sets.DetectionSet.batches`."""
        for idx in batch_indices(len(self), batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last):
            yield collate_detection([self[int(i)] for i in idx])


def collate_detection(samples: Sequence[tuple[torch.Tensor, dict]]) -> DetectionBatch:
    """Pad images to the batch's largest height and width (DETR's ``NestedTensor``)."""
    h = max(x.shape[1] for x, _ in samples)
    w = max(x.shape[2] for x, _ in samples)
    images = torch.zeros((len(samples), samples[0][0].shape[0], h, w), dtype=samples[0][0].dtype)
    pad = torch.ones((len(samples), h, w), dtype=torch.bool)
    for i, (x, _) in enumerate(samples):
        images[i, :, :x.shape[1], :x.shape[2]] = x
        pad[i, :x.shape[1], :x.shape[2]] = False
    return DetectionBatch(images, [t for _, t in samples], pad if pad.any() else None)


def load_coco(root: str | os.PathLike, split: str, *, train: bool, transforms: Callable | None = None,
              return_masks: bool = False) -> CocoDetection:
    """``<root>/<split>/`` images with ``<root>/annotations/instances_<split>.json``."""
    root = Path(root)
    return CocoDetection(root / split, root / "annotations" / f"instances_{split}.json",
                         transforms if transforms is not None else DetrTransforms(train), return_masks=return_masks)


# --- fixed-size view for models without padding masks ------------------------------------------

class SquareCocoSet:
    """COCO as a lazily decoded stand-in for :class:`.sets.DetectionSet`: every image is resized
    to ``size`` × ``size`` (aspect not kept) when it is read.

    For detectors without a padding-mask input (DETR-lite): with one fixed input size there is
    no padding, and a box normalised to its own image (``cx, cy, w, h`` in [0, 1]) is the same
    box in the squashed image, so targets and predictions stay in DETR's normalised frame and
    :class:`paperzoo.layers.detr_lite.PostProcess` maps them back with ``orig_size``. A
    deviation from DETR's aspect-preserving multi-scale resize and random crop; record it.

    Interface used by the studies: ``images[index]`` → uint8 (B, 3, size, size) (index: int
    tensor, list or slice), ``targets[j]`` / ``targets[a:b]`` → ``{"labels", "boxes"
    (normalised cxcywh), "orig_size" (h, w)}``, ``len``, ``num_classes``, ``class_names``,
    ``image_ids``, ``category_ids``, ``coco_path``, ``subset(index)``.
    """

    def __init__(self, root: str | os.PathLike, split: str, size: int, *, coco: CocoDetection | None = None,
                 image_ids: Sequence[int] | None = None):
        root = Path(root)
        self.root, self.split, self.size = root, split, int(size)
        self.coco = coco if coco is not None else CocoDetection(
            root / split, root / "annotations" / f"instances_{split}.json", transforms=None)
        self.image_ids = list(self.coco.ids if image_ids is None else image_ids)
        self.category_ids, self.class_names = self.coco.category_ids, self.coco.class_names
        self.coco_path = self.coco.coco_path
        self.images, self.targets = _SquareImages(self), _SquareTargets(self)

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, index) -> "SquareCocoSet":
        ids = [self.image_ids[int(i)] for i in index]
        return SquareCocoSet(self.root, self.split, self.size, coco=self.coco, image_ids=ids)

    def image(self, j: int) -> torch.Tensor:
        info = self.coco.coco.imgs[self.image_ids[j]]
        with Image.open(self.coco.img_folder / info["file_name"]) as im:
            im = im.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
            return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()   # (3, S, S) uint8

    def target(self, j: int) -> dict:
        image_id = self.image_ids[j]
        info = self.coco.coco.imgs[image_id]
        h, w = int(info["height"]), int(info["width"])
        t = self.coco.load_target(image_id, h, w)
        b = t["boxes"]                                                            # (n, 4) abs xyxy
        cxcywh = torch.stack([(b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h,
                              (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h], 1)
        return {"labels": t["labels"], "boxes": cxcywh, "orig_size": torch.tensor([h, w]),
                "image_id": torch.tensor(image_id)}


def _positions(n: int, index) -> list[int]:
    if isinstance(index, slice):
        return list(range(n))[index]
    if isinstance(index, torch.Tensor):
        return [int(i) for i in index.reshape(-1).tolist()]
    return [int(i) for i in index]


class _SquareImages:
    def __init__(self, ds: SquareCocoSet):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, int):
            return self.ds.image(index)
        pos = _positions(len(self.ds), index)
        if not pos:
            return torch.zeros((0, 3, self.ds.size, self.ds.size), dtype=torch.uint8)
        return torch.stack([self.ds.image(j) for j in pos])                  # (B, 3, S, S)


class _SquareTargets:
    def __init__(self, ds: SquareCocoSet):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index):
        if isinstance(index, int):
            return self.ds.target(index)
        return [self.ds.target(j) for j in _positions(len(self.ds), index)]
