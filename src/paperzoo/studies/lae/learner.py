"""LAE's three parts on a frozen ViT: Learning (online PET), Accumulation (offline PET), Ensemble.

* :class:`CILModel` — frozen backbone + one PET set + one linear head per task (the
  official ``DynamicSimpleHead``: logits of all heads concatenated).
* :func:`learn_task` — Learning: CE on the **current task's logits only** (targets shifted
  by the number of old classes), through ``engine.train`` with a fresh Adam per task; with
  ``freeze_steps`` > 0 the PET gets no gradient for the first steps (head only), as the
  official ``num_freeze_epochs`` for every task after the first.
* :class:`PETAccumulator` — Accumulation (Eq. 4 of the paper):
  ``θ_off ← d·θ_off + (1 − d)·θ_on`` after every optimizer step, the offline PET created as
  a copy of the online one at the start of task 2; :func:`ema_decay` rescales ``d`` so the
  per-task pull of the official ``0.9999`` over ~1000 steps survives short tasks.
* :func:`ensemble_probs` — Ensemble (Eq. 5): element-wise max of the two experts' softmaxes.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperzoo.data.sets import ClassificationSet, to_float
from paperzoo.engine.train import IndexBatches, train
from paperzoo.layers.pet import PETViT


class CILModel(nn.Module):
    """Frozen backbone, online PET (None for the linear probe) and per-task heads."""

    def __init__(self, backbone: PETViT, pet: nn.ModuleList | None):
        super().__init__()
        self.backbone, self.pet = backbone, pet
        self.heads = nn.ModuleList()

    @property
    def num_seen(self) -> int:
        return sum(h.out_features for h in self.heads)

    def add_head(self, n_classes: int) -> nn.Linear:
        """A new task head, initialised N(0, 0.001²) with zero bias (official ``SimpleHead.weights_init``):
        a head's random init must stay small against what it learns, or it adds noise to the
        cross-task argmax."""
        head = nn.Linear(self.backbone.embed_dim, n_classes)
        nn.init.normal_(head.weight, std=0.001)
        nn.init.zeros_(head.bias)
        self.heads.append(head)
        return head

    def logits(self, x: Tensor, pet: nn.ModuleList | None) -> Tensor:
        """(B, C, H, W) → (B, num_seen): all heads on the features of ``x`` under ``pet``."""
        f = self.backbone(x, pet)                         # (B, D)
        return torch.cat([h(f) for h in self.heads], dim=1)


def ema_decay(c: float, steps_per_task: int) -> float:
    """d = 1 − c / steps_per_task: the offline PET moves ≈ c of the way to the online one per task
    (official: ``ema_decay`` 0.9999 in gqk/LAE ``main.py`` over ≈1040 CIFAR steps, c ≈ 0.1;
    the rescaling is ours, see docs/studies/lae.md)."""
    if steps_per_task < 1 or not 0 < c < steps_per_task:
        raise ValueError(f"ema_decay: need 0 < c < steps_per_task, got c={c}, steps={steps_per_task}")
    return 1.0 - c / steps_per_task


class PETAccumulator:
    """Offline PET: an EMA of the online PET, updated after every optimizer step (Eq. 4).

    ``update(model)`` reads ``model.pet``; the engine's training loop calls it (``ema=``).
    Every parameter is averaged, learnable scalars included (as timm's ``ModelEmaV2`` over the
    whole PET module in gqk/LAE ``main.py``).
    """

    def __init__(self, pet: nn.ModuleList, decay: float):
        self.module = copy.deepcopy(pet)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)

    @torch.no_grad()
    def update(self, model: CILModel) -> None:
        for p_off, p_on in zip(self.module.parameters(), model.pet.parameters()):
            p_off.mul_(self.decay).add_(p_on.detach(), alpha=1.0 - self.decay)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, sd: dict) -> None:
        self.module.load_state_dict(sd)


def ensemble_probs(p_online: Tensor, p_offline: Tensor) -> Tensor:
    """Eq. 5: element-wise max over the two experts' class probabilities (not a logit mean)."""
    return torch.maximum(p_online, p_offline)


def prepare_images(images_u8: Tensor, size: int) -> Tensor:
    """uint8 (B, C, H, W) → float in [0, 1] (no mean/std: official ``norm=False``), nearest-resized
    to the backbone's ``size`` and given 3 channels."""
    x = to_float(images_u8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="nearest")
    return x


class TaskBatches:
    """Step ``i`` → (images (B, 3, S, S), labels (B,), i): a seeded permutation per epoch."""

    def __init__(self, ds: ClassificationSet, batch_size: int, seed: int, size: int):
        self.ds, self.size = ds, size
        self.index = IndexBatches(len(ds), min(batch_size, len(ds)), seed)

    @property
    def per_epoch(self) -> int:
        return self.index.per_epoch

    def __call__(self, i: int):
        j = self.index(i)
        return prepare_images(self.ds.images[j], self.size), self.ds.labels[j], i


def learn_task(model: CILModel, batches: TaskBatches, *, head: nn.Linear, label_offset: int, steps: int,
               freeze_steps: int = 0, lr: float = 1e-3, ema: PETAccumulator | None = None,
               train_pet: bool = True, train_head: bool = True) -> list[dict]:
    """Train ``head`` (+ the online PET after ``freeze_steps``) on one task; returns the history.

    Loss: CE over the current head's logits only, targets ``y − label_offset`` (old heads
    get no gradient). A new Adam (wd 0, constant lr, no clipping) per call, as per task officially.
    """
    use_pet = train_pet and model.pet is not None

    def loss_fn(m: CILModel, batch):
        x, y, i = batch
        if use_pet and i >= freeze_steps:
            f = m.backbone(x, m.pet)                       # (B, D), PET in the graph
        else:
            with torch.no_grad():
                f = m.backbone(x, m.pet)                   # head only: PET frozen (no grad → Adam skips it)
        loss = F.cross_entropy(head(f), y - label_offset)
        return loss, {"loss_ce": loss.detach()}

    params = (list(head.parameters()) if train_head else []) + (list(model.pet.parameters()) if use_pet else [])
    return train(model, loss_fn, batches, steps=steps, final=None, lr=lr, weight_decay=0.0, clip_grad=0.0,
                 schedule="constant", optimizer="adam", params=params, ema=ema, progress=False)


@torch.no_grad()
def predict_probs(model: CILModel, ds: ClassificationSet, pet: nn.ModuleList | None, size: int,
                  batch_size: int = 500) -> Tensor:
    """Softmax over all seen classes (N, num_seen) for every image of ``ds`` under ``pet``."""
    model.eval()
    out = [model.logits(prepare_images(ds.images[i:i + batch_size], size), pet).softmax(dim=1)
           for i in range(0, len(ds), batch_size)]
    return torch.cat(out)
