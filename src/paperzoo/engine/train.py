"""The one training loop of the project: every study plugs its model, data and loss in here.

    history = train(model, loss_fn, batches, steps=2500, final="teacher.pt", lr=3e-4)

- ``batches(i)`` returns the batch of step ``i`` and must depend on ``i`` only (seed it
  with ``(seed, i)``, e.g. with ``IndexBatches``): that is what makes a resumed run
  bit-identical to an uninterrupted one on CPU.
- ``loss_fn(model, batch)`` returns ``(loss, loss_dict)``; the dict's names flow unchanged
  into the history (and from there into ``metrics.json``).
- ``optimizer``: ``"adamw"`` (default), ``"adam"`` (L2 ``weight_decay`` as torch's Adam) or
  ``"sgd"`` (``momentum``, ``nesterov``); L2 gradient clipping, linear warmup then a step (x ``drop_factor`` at
  ``drop_at`` of the run) or cosine schedule.
- Every ``checkpoint_every_s`` seconds (default: ``$PAPERZOO_CHECKPOINT_EVERY_S`` or 120) model, optimizer, scheduler, EMA, history, step and
  torch RNG state go to ``<final>.partial`` (``engine.checkpoint.run_resumable``); a
  killed run resumes from it. The final file ``{"model", "ema", "history", "steps"}`` is
  written atomically and the partial file removed. Everything is read back with
  ``torch.load(weights_only=True)``.
- ``ema``: any object with ``update(model)``, ``state_dict()``, ``load_state_dict()``,
  e.g. ``timm.utils.ModelEmaV3(model, decay=0.999)``; updated after every step.
- ``callback(step, model)`` runs every ``eval_every`` steps and after the last one, with
  the model in eval mode; a returned dict is merged into that step's history record.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from .checkpoint import finish, load_checkpoint, run_resumable, save_checkpoint

LossFn = Callable[[nn.Module, Any], "tuple[Tensor, dict[str, Tensor]]"]


class IndexBatches:
    """Sample indices of step ``i``: a fresh permutation of ``range(n)`` per epoch, seeded by
    ``(seed, epoch)``; the last incomplete batch of an epoch is dropped."""

    def __init__(self, n: int, batch_size: int, seed: int = 0):
        assert 0 < batch_size <= n, f"batch_size {batch_size} for {n} samples"
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def __call__(self, i: int) -> Tensor:
        epoch, j = divmod(i, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[j * self.batch_size:(j + 1) * self.batch_size]  # (batch_size,)


def step_generator(seed: int, i: int) -> torch.Generator:
    """A generator for step ``i``'s random augmentation, independent of global RNG state."""
    return torch.Generator().manual_seed(seed * 1_000_003 + i + 7_919)


def lr_lambda(steps: int, schedule: str = "step", warmup: int = 0, drop_at: float | Sequence[float] = 0.85,
              drop_factor: float = 0.1) -> Callable[[int], float]:
    """LR multiplier at step ``s``: linear warmup over ``warmup`` steps, then
    ``"constant"``, ``"step"`` (x ``drop_factor`` from ``drop_at * steps`` on; a list of
    fractions drops at each, e.g. every 10 of 48 epochs) or ``"cosine"`` (to 0)."""
    assert schedule in ("constant", "step", "cosine"), schedule
    milestones = sorted(drop_at) if isinstance(drop_at, (list, tuple)) else [drop_at]

    def f(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        if schedule == "step":
            return drop_factor ** sum(s >= m * steps for m in milestones)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))
        return 1.0

    return f


def to_device(obj: Any, device: str | torch.device) -> Any:
    """``obj`` with every tensor inside dicts, lists and tuples moved to ``device``."""
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"`` → CUDA when available (the paper scale on a GPU node), else CPU; or the given name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


OPTIMIZERS = ("adamw", "adam", "sgd")


def make_optimizer(name: str, params: Iterable, *, lr: float, weight_decay: float = 0.0,
                   betas: tuple[float, float] = (0.9, 0.999), momentum: float = 0.9,
                   nesterov: bool = False) -> torch.optim.Optimizer:
    """``"adamw"`` | ``"adam"`` | ``"sgd"`` by name (config strings map here, nowhere else).

    Always the multi-tensor (``foreach``) implementation: torch picks it by default on CUDA only,
    but on the CPU it gives the per-tensor loop's numbers bit for bit (test) at fewer dispatched
    ops: AdamW's step on a DETR-lite student, 141 tensors, 6.1 -> 4.0 ms of a ~75 ms step.
    """
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, foreach=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, foreach=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                               foreach=True)
    raise ValueError(f"optimizer {name!r}: expected one of {list(OPTIMIZERS)}")


def train(model: nn.Module, loss_fn: LossFn, batches: Callable[[int], Any], *, steps: int,
          final: str | os.PathLike | None = None, lr: float = 3e-4, weight_decay: float = 1e-4,
          betas: tuple[float, float] = (0.9, 0.999), clip_grad: float = 0.1, schedule: str = "step",
          warmup: int = 0, drop_at: float | Sequence[float] = 0.85, drop_factor: float = 0.1,
          device: str | torch.device | None = None, optimizer: str = "adamw", momentum: float = 0.9,
          nesterov: bool = False, params: Iterable | None = None, ema: Any = None,
          callback: Callable[[int, nn.Module], dict | None] | None = None, eval_every: int = 0,
          checkpoint_every_s: float | None = None, progress: bool = True, desc: str = "train") -> list[dict]:
    """Train ``model`` for ``steps`` optimizer steps; return one record per step.

    A record holds ``step`` (1-based), ``lr``, ``loss``, ``grad_norm`` (before clipping)
    and every entry of the loss dict as a float, plus whatever ``callback`` returned.
    ``params``: parameters or param groups for the optimizer (default: all trainable ones).
    ``final``: output file; None trains in memory (no checkpoints, nothing written).
    ``device``: the model and every tensor of each batch are moved there (None: left as they
    are); checkpoints are always written from CPU copies' point of view by torch.save.
    """
    if device is not None:
        model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(optimizer, params if params is not None else trainable, lr=lr,
                         weight_decay=weight_decay, betas=betas, momentum=momentum, nesterov=nesterov)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(steps, schedule, warmup, drop_at, drop_factor))
    history: list[dict] = []
    model.train()

    def step(i: int) -> None:
        batch = batches(i) if device is None else to_device(batches(i), device)
        loss, parts = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, clip_grad if clip_grad > 0 else math.inf,
                                                   foreach=True)  # as make_optimizer: same numbers, fewer ops
        rec = {"step": i + 1, "lr": sched.get_last_lr()[0], "loss": loss.item(), "grad_norm": grad_norm.item(),
               **{k: float(v.detach()) for k, v in parts.items()}}
        opt.step()
        sched.step()
        if ema is not None:
            ema.update(model)
        if callback is not None and ((eval_every and (i + 1) % eval_every == 0) or i + 1 == steps):
            model.eval()
            with torch.no_grad():
                rec.update(callback(i + 1, model) or {})
            model.train()
        history.append(rec)

    def get_state() -> dict:
        return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "ema": ema.state_dict() if ema is not None else None, "history": history,
                "rng": torch.get_rng_state()}

    def set_state(state: dict) -> None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        history[:] = state["history"]
        torch.set_rng_state(state["rng"])

    if final is None:
        from tqdm.auto import tqdm

        for i in tqdm(range(steps), desc=desc, disable=not progress, mininterval=2.0):
            step(i)
        return history
    from .metrics import params_digest

    fingerprint = {"params_sha256": params_digest(), "steps": steps, "lr": lr, "schedule": schedule,
                   "warmup": warmup, "weight_decay": weight_decay, "optimizer": optimizer,
                   "n_params": sum(p.numel() for p in model.parameters())}
    if checkpoint_every_s is None:   # env: tests force frequent checkpoints through the DAG
        checkpoint_every_s = float(os.environ.get("PAPERZOO_CHECKPOINT_EVERY_S", 120.0))
    run_resumable(steps, step, get_state, set_state, final, every_s=checkpoint_every_s, desc=desc,
                  progress=progress, fingerprint=fingerprint)
    save_checkpoint(final, {"model": model.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                            "history": history, "steps": steps})
    finish(final)
    return history


def load_trained(model: nn.Module, path: str | os.PathLike, use_ema: bool = False) -> list[dict]:
    """Load weights written by ``train`` into ``model`` (the EMA's with ``use_ema``); return its history."""
    state = load_checkpoint(path)
    if use_ema:
        sd = state["ema"]
        sd = {k.removeprefix("module."): v for k, v in sd.items()}  # timm ModelEma* wraps the copy as .module
        model.load_state_dict(sd)
    else:
        model.load_state_dict(state["model"])
    return state["history"]
