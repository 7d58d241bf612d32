"""Class-incremental benchmarks and their evaluation matrices (paper Sec. 4.1 metrics).

A benchmark is a train and a test :class:`~paperzoo.data.sets.ClassificationSet` whose
classes are split into ``n_tasks`` tasks of ``classes_per_task`` classes in a seeded class
order (seed = class order, as the paper's 3 class orders). Labels are remapped to their
position in that order, so head ``t`` owns labels ``t·c .. (t+1)·c − 1``.

Metrics (fractions in [0, 1]), from ``acc[t, j]`` = accuracy on the test images of task
``j`` after learning task ``t`` (class-incremental: argmax over all seen classes, no task id):

* ``A_t`` = accuracy on all seen test images after task ``t``; ``A_T`` the last one (``acc_last``).
* ``Ā`` = mean over t of ``A_t`` (``acc_avg``, "average incremental accuracy").
* forgetting = mean over j < T of ``max_{t<T} acc[t, j] − acc[T, j]``.
* ``acc_old`` = final accuracy on the test images of tasks 1..T−1, ``acc_new`` on task T.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from paperzoo.data.sets import ClassificationSet, load_classification

# benchmark name → (train split, test split) in the dataset folder written by data.generate
# (cifar100, imagenet_r: the store layout written by ``paperzoo.data.cl_download``; CIFAR's 32-px
# images are resized to the backbone's input on the fly, ImageNet-R is stored at 224 px)
SPLITS = {"classes": ("downstream_train", "downstream_test"), "digits": ("train", "test"),
          "cifar100": ("train", "test"), "imagenet_r": ("train", "test")}


@dataclass
class Benchmark:
    """Train/test sets with labels already in class-order position (0..K−1)."""

    train: ClassificationSet
    test: ClassificationSet
    tasks: list[list[int]]                # labels (positions) of each task

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def task_set(self, split: str, t: int) -> ClassificationSet:
        return getattr(self, split).select_classes(self.tasks[t])

    def seen_set(self, split: str, t: int) -> ClassificationSet:
        return getattr(self, split).select_classes([c for task in self.tasks[:t + 1] for c in task])


def class_order(num_classes: int, seed: int) -> list[int]:
    """The class order of ``seed`` (a permutation of the original labels; every seed permutes)."""
    return np.random.default_rng([seed, 4_211]).permutation(num_classes).tolist()


def remap(ds: ClassificationSet, order: list[int]) -> ClassificationSet:
    """Keep the classes in ``order`` and relabel each to its position in ``order``."""
    lut = torch.full((max(order + [int(ds.labels.max())]) + 1,), -1, dtype=torch.long)
    lut[torch.as_tensor(order)] = torch.arange(len(order))
    sub = ds.select_classes(order)
    return ClassificationSet(sub.images, lut[sub.labels], [ds.class_names[c] for c in order])


def load_benchmark(name: str, data_dir: str | os.PathLike, *, n_tasks: int, classes_per_task: int, seed: int,
                   n_train_per_class: int | None = None) -> Benchmark:
    """Load ``name`` from ``data_dir`` and cut it into tasks in the class order of ``seed``.

    ``n_train_per_class`` (optional) keeps only the first n training images of each class.
    """
    if name not in SPLITS:
        raise KeyError(f"lae: unknown benchmark {name!r}; have {sorted(SPLITS)}")
    tr, te = (load_classification(Path(data_dir), s) for s in SPLITS[name])
    need = n_tasks * classes_per_task
    if need > tr.num_classes:
        raise ValueError(f"lae: {n_tasks} tasks x {classes_per_task} classes > {tr.num_classes} classes of {name}")
    order = class_order(tr.num_classes, seed)[:need]
    train, test = remap(tr, order), remap(te, order)
    if n_train_per_class:
        keep = torch.cat([torch.nonzero(train.labels == c).flatten()[:n_train_per_class] for c in range(need)])
        train = train.subset(keep.sort().values)
    tasks = [list(range(t * classes_per_task, (t + 1) * classes_per_task)) for t in range(n_tasks)]
    return Benchmark(train, test, tasks)


# --- evaluation matrices ------------------------------------------------------------------------

def task_accuracies(pred: torch.Tensor, labels: torch.Tensor, tasks: list[list[int]]) -> list[float]:
    """Accuracy on the images of each task in ``tasks`` (pred and labels (N,) over seen classes)."""
    out = []
    for task in tasks:
        m = torch.isin(labels, torch.as_tensor(task))
        out.append(float((pred[m] == labels[m]).float().mean()) if m.any() else float("nan"))
    return out


def task_aware_accuracy(probs: torch.Tensor, labels: torch.Tensor, tasks: list[list[int]]) -> float:
    """Accuracy when the task id is given: argmax over the true task's classes only.

    Compared with the class-incremental accuracy (argmax over all seen classes), it separates
    what the features still know (task-aware) from the competition between heads."""
    correct = 0
    for task in tasks:
        m = torch.isin(labels, torch.as_tensor(task))
        if m.any():
            pred = probs[m][:, task].argmax(1)                      # position within the task
            correct += int((torch.as_tensor(task)[pred] == labels[m]).sum())
    return correct / len(labels)


def summarize(acc: np.ndarray, stage_acc: np.ndarray, prefix: str = "") -> dict[str, float]:
    """Named metrics from ``acc`` (T, T) (row t: after task t; NaN above the diagonal) and
    ``stage_acc`` (T,) = A_t. Keys: acc_last, acc_avg, forgetting, acc_old, acc_new,
    acc_stage<t> (1-based) and acc_t<t>_task<j> (1-based), each with ``prefix``."""
    T = acc.shape[0]
    m = {f"{prefix}acc_last": float(stage_acc[-1]), f"{prefix}acc_avg": float(np.mean(stage_acc)),
         f"{prefix}forgetting": forgetting(acc), f"{prefix}acc_new": float(acc[-1, -1]),
         f"{prefix}acc_old": float(np.mean(acc[-1, :-1])) if T > 1 else float("nan")}
    for t in range(T):
        m[f"{prefix}acc_stage{t + 1}"] = float(stage_acc[t])
        for j in range(t + 1):
            m[f"{prefix}acc_t{t + 1}_task{j + 1}"] = float(acc[t, j])
    return {k: v for k, v in m.items() if np.isfinite(v)}


def forgetting(acc: np.ndarray) -> float:
    """Mean over old tasks j < T of (best earlier accuracy on j) − (final accuracy on j)."""
    T = acc.shape[0]
    if T < 2:
        return 0.0
    return float(np.mean([np.max(acc[j:T - 1, j]) - acc[T - 1, j] for j in range(T - 1)]))
