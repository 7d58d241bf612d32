"""Step-indexed ImageNet batches of the pretraining: timm's train transform reduced to
RandomResizedCrop + horizontal flip (uniforms drawn from the step's generator, so batch ``i``
is a function of ``(seed, i)`` only), and the resize + centre-crop evaluation transform.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_PCT = 0.875

CROP_ATTEMPTS = 10


def crop_box(height: int, width: int, u: Sequence[Sequence[float]], scale=(0.08, 1.0),
             ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box ``(top, left, h, w)`` for an ``height`` x ``width`` image,
    from given uniforms ``u`` (:data:`CROP_ATTEMPTS` rows of 4 numbers in [0, 1): area
    fraction, log aspect ratio, top, left), by torchvision's algorithm (``make_params``):
    the first of 10 attempts that fits, else the centre crop clamped to ``ratio``."""
    area = height * width
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    for ua, ur, ut, ul in u:
        target = area * (scale[0] + (scale[1] - scale[0]) * ua)
        aspect = math.exp(lo + (hi - lo) * ur)
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return min(int(ut * (height - h + 1)), height - h), min(int(ul * (width - w + 1)), width - w), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        w, h = round(height * max(ratio)), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _as_rgb_tensor(img) -> Tensor:
    """uint8 (3, H, W) from a tensor (1, 3 or 4 channels) or a PIL image."""
    if not isinstance(img, Tensor):
        from torchvision.transforms.v2.functional import pil_to_tensor

        img = pil_to_tensor(img.convert("RGB"))
    if img.ndim != 3:
        raise ValueError(f"expected an image (C, H, W), got shape {tuple(img.shape)}")
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return img[:3]


class StepImageBatches:
    """Step-indexed image-classification batches: ``batches(i)`` -> ``(images, labels, i)``.

    dset: ``dset[j]`` -> ``(image, label)``, the image a uint8 (C, H, W) tensor or a PIL
        image (an ``ImageFolder`` of ``paperzoo.data.imagenet.ImageNetFolders``, a ``Subset``).
    train: True: sample order a fresh seeded permutation per epoch
        (``engine.train.IndexBatches``, last incomplete batch dropped), RandomResizedCrop
        ``image_size`` (scale (0.08, 1), ratio (3/4, 4/3), bicubic, antialiased) + horizontal
        flip with probability 1/2; the uniforms of every sample's crop (:func:`crop_box`) and
        flip are drawn up front from ``engine.train.step_generator(seed, i)``, so step ``i``'s
        batch depends on ``(seed, i)`` only (not on the call order, the global RNG or
        ``workers``). False: batch ``i`` is images ``[i * B, (i + 1) * B)`` in order (the last
        one may be short; ``len(batches)`` batches), bicubic resize of the short side to
        ``int(image_size / 0.875)`` + centre crop.
    workers: 0 decodes in the calling thread; > 0 decodes and augments the samples in a pool
        of that many threads and prepares the next ``prefetch`` batches ahead (same batches).

    ``images`` float32 (B, 3, S, S) normalised with ImageNet's mean / std; ``labels`` int64 (B,).
    """

    def __init__(self, dset, batch_size: int, seed: int = 0, *, train: bool, image_size: int = 224,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, workers: int = 0,
                 prefetch: int = 2):
        from paperzoo.engine.train import IndexBatches

        if batch_size < 1 or len(dset) < 1:
            raise ValueError(f"StepImageBatches: batch_size {batch_size} for {len(dset)} images")
        self.dset, self.batch_size, self.seed, self.train = dset, batch_size, seed, train
        self.image_size, self.mean, self.std = int(image_size), list(mean), list(std)
        self.resize_to = int(self.image_size / CROP_PCT)
        self.sampler = IndexBatches(len(dset), batch_size, seed) if train else None
        self.workers, self.prefetch = int(workers), int(prefetch)
        self._pool, self._pending = None, {}

    def __len__(self) -> int:
        """Batches per epoch (train) / in the whole set (eval)."""
        return len(self.dset) // self.batch_size if self.train else math.ceil(len(self.dset) / self.batch_size)

    def _plan(self, i: int) -> list[tuple[int, list | None, bool]]:
        """Step ``i``'s samples: ``(index, crop uniforms, flip)`` each."""
        if not self.train:
            if not 0 <= i < len(self):
                raise IndexError(f"eval batch {i} of {len(self)}")
            idx = range(i * self.batch_size, min((i + 1) * self.batch_size, len(self.dset)))
            return [(j, None, False) for j in idx]
        from paperzoo.engine.train import step_generator

        idx = self.sampler(i).tolist()
        g = step_generator(self.seed, i)
        u = torch.rand(len(idx), CROP_ATTEMPTS, 4, generator=g, dtype=torch.float64).tolist()
        flip = (torch.rand(len(idx), generator=g, dtype=torch.float64) < 0.5).tolist()
        return list(zip(idx, u, flip))

    def _sample(self, j: int, u, flip: bool) -> tuple[Tensor, int]:
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        img, label = self.dset[j]
        img = _as_rgb_tensor(img)
        s, bicubic = self.image_size, InterpolationMode.BICUBIC
        if u is not None:
            top, left, h, w = crop_box(img.shape[-2], img.shape[-1], u)
            img = TF.resized_crop(img, top, left, h, w, [s, s], interpolation=bicubic, antialias=True)
            if flip:
                img = TF.horizontal_flip(img)
        else:
            img = TF.center_crop(TF.resize(img, [self.resize_to], interpolation=bicubic, antialias=True), [s, s])
        return img, int(label)

    def _submit(self, i: int) -> None:
        if i not in self._pending and (self.train or 0 <= i < len(self)):
            self._pending[i] = [self._pool.submit(self._sample, *p) for p in self._plan(i)]

    def _samples(self, i: int) -> list[tuple[Tensor, int]]:
        if self.workers <= 0:
            return [self._sample(*p) for p in self._plan(i)]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="imagenet")
        for k in [k for k in self._pending if k < i or k > i + self.prefetch]:   # a jump (resume, eval)
            for f in self._pending.pop(k):
                f.cancel()
        for k in range(i, i + self.prefetch + 1):
            self._submit(k)
        return [f.result() for f in self._pending.pop(i)]

    def __call__(self, i: int) -> tuple[Tensor, Tensor, int]:
        from torchvision.transforms.v2 import functional as TF

        samples = self._samples(i)
        images = torch.stack([img for img, _ in samples]).float().div_(255)             # (B, 3, S, S)
        labels = torch.tensor([lab for _, lab in samples], dtype=torch.int64)           # (B,)
        return TF.normalize(images, self.mean, self.std), labels, i

    def close(self) -> None:
        """Stop the worker threads (if any); the object stays usable (a new pool starts)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._pending = None, {}
