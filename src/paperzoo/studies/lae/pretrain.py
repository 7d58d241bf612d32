"""The frozen backbone of every continual run: pretrained once, shared by all arms.

* Embedded scales: a small ViT (``layers.vit``) + linear head trained from scratch on the
  ``upstream`` classes of the procedural ``classes`` set (disjoint from the downstream CL
  classes), through ``engine.train`` (resumable). Stands in for the paper's IN-21k pretraining.
* Paper scale: the official JAX checkpoint ``imagenet21k/ViT-B_16.npz`` (the one of
  L2P/DualPrompt/LAE) is downloaded (``data.coco_download.download``: resumable, size and
  SHA-256 checked, HTTPS only) and loaded with timm's npz loader. The official code gives the URL
  (gqk/LAE ``libml/model/backbone/vit.py``, ``vit_b16_in21k``) but no checksum, so the config
  holds ``sha256: null`` and the download refuses to run
  without ``allow_unverified: true``.

Output ``backbone.pt``: ``{"model": vit state_dict, "name", "kwargs"}`` (weights_only-loadable).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.data.sets import load_classification
from paperzoo.engine.checkpoint import load_checkpoint, save_checkpoint
from paperzoo.engine.train import IndexBatches, load_trained, step_generator, train
from paperzoo.layers.registry import create_model

from .learner import prepare_images

VIT_B16_IN21K_URL = "https://storage.googleapis.com/vit_models/imagenet21k/ViT-B_16.npz"


def build_vit(name: str, kwargs: dict | None = None) -> nn.Module:
    return create_model(name, **(kwargs or {}))


class Classifier(nn.Module):
    def __init__(self, vit: nn.Module, num_classes: int):
        super().__init__()
        self.vit, self.head = vit, nn.Linear(vit.embed_dim, num_classes)

    def forward(self, x):
        return self.head(self.vit(x))                      # (B, K)


@torch.no_grad()
def accuracy(model: nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, size: int, bs: int = 500) -> float:
    model.eval()
    pred = torch.cat([model(prepare_images(images_u8[i:i + bs], size)).argmax(1) for i in range(0, len(labels), bs)])
    return float((pred == labels).float().mean())


def augment(x: torch.Tensor, g: torch.Generator, shift: int) -> torch.Tensor:
    """Random translation by up to ``shift`` px (reflect padding) and horizontal flip, per image."""
    B, _, H, W = x.shape
    xp = F.pad(x, (shift, shift, shift, shift), mode="reflect")
    off = torch.randint(0, 2 * shift + 1, (B, 2), generator=g).tolist()
    flip = (torch.rand(B, generator=g) < 0.5).tolist()
    out = torch.stack([xp[b, :, dy:dy + H, dx:dx + W] for b, (dy, dx) in enumerate(off)])
    return torch.where(torch.tensor(flip).view(B, 1, 1, 1), out.flip(-1), out)


def pretrain_upstream(*, model: str, model_kwargs: dict, data_dir, out, steps: int, batch_size: int, lr: float,
                      weight_decay: float, warmup: int, seed: int, shift: int = 0,
                      checkpoint_every_s: float | None = None) -> dict:
    """Train ViT + head on ``upstream_train``; write ``out``; return upstream train/test accuracy."""
    tr, te = load_classification(data_dir, "upstream_train"), load_classification(data_dir, "upstream_test")
    torch.manual_seed(seed)
    vit = build_vit(model, model_kwargs)
    size = vit.patch_embed.img_size[0]
    clf = Classifier(vit, tr.num_classes)
    index = IndexBatches(len(tr), batch_size, seed)

    def batches(i):
        j = index(i)
        x = prepare_images(tr.images[j], size)
        return (augment(x, step_generator(seed, i), shift) if shift else x), tr.labels[j]

    def loss_fn(m, batch):
        loss = F.cross_entropy(m(batch[0]), batch[1])
        return loss, {"loss_ce": loss.detach()}

    run = Path(str(out) + ".train.pt")
    train(clf, loss_fn, batches, steps=steps, final=run, lr=lr, weight_decay=weight_decay, clip_grad=1.0,
          schedule="cosine", warmup=warmup, optimizer="adamw", checkpoint_every_s=checkpoint_every_s,
          progress=False, desc="lae pretrain")
    history = load_trained(clf, run)
    n_eval = min(len(tr), len(te))
    res = {"upstream_train_acc": accuracy(clf, tr.images[:n_eval], tr.labels[:n_eval], size),
           "upstream_test_acc": accuracy(clf, te.images, te.labels, size),
           "final_loss": float(history[-1]["loss"]), "upstream_classes": tr.num_classes,
           "epochs": steps * batch_size / len(tr)}
    save_checkpoint(out, {"model": vit.state_dict(), "name": model, "kwargs": model_kwargs})
    run.unlink(missing_ok=True)
    return res


def fetch_official_weights(url: str, dest, *, sha256: str | None, size: int | None = None,
                           allow_unverified: bool = False) -> Path:
    """Download the official checkpoint to ``dest`` (resumable, verified, atomic rename)."""
    from paperzoo.data.coco_download import download

    return download(url, dest, size=size, sha256=sha256, allow_unverified=allow_unverified)


def load_official(*, model: str, model_kwargs: dict, npz, out) -> dict:
    """Load the JAX ``.npz`` into the registered ViT-B/16 and write ``out``."""
    from timm.models.vision_transformer import _load_weights

    vit = build_vit(model, model_kwargs)
    _load_weights(vit, str(npz))
    save_checkpoint(out, {"model": vit.state_dict(), "name": model, "kwargs": model_kwargs})
    return {"n_params": sum(p.numel() for p in vit.parameters())}


def load_backbone(path: str | os.PathLike) -> nn.Module:
    """The pretrained ViT written by :func:`pretrain_upstream` or :func:`load_official`."""
    state = load_checkpoint(path)
    vit = build_vit(state["name"], state["kwargs"])
    vit.load_state_dict(state["model"])
    return vit
