"""Figures of the CPGNet study, one function per figure (Agg backend, atomic PNG).

Each function takes the aggregated metrics (``engine.metrics.aggregate``), the arms in
plotting order and a PNG path; error bars are the sample std over seeds. An arm without a
metric is left out of that panel. :func:`fig_bev_scene` is the exception: it draws one
validation scan from above, ground truth vs one trained arm's prediction (single pass and
4-flip TTA), from the points and labels themselves.
"""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from paperzoo.engine.plots import arm_stat, save_figure  # noqa: E402

FIGURES = ("fig_miou_tta", "fig_iou_per_class", "fig_latency")
_LABEL = "CPGNet (arXiv 2204.09914) reproduction"


def _save(fig, path, scale: str) -> None:
    save_figure(fig, path, f"{_LABEL}, scale {scale}")


_get = arm_stat


def _bars(ax, arms: list[str], series: list[tuple[str, list[tuple[float, float, int]]]], scale_by: float = 1.0):
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(arms))
    for k, (label, vals) in enumerate(series):
        mean = np.array([v[0] for v in vals]) * scale_by
        std = np.array([v[1] for v in vals]) * scale_by
        pos = x - 0.4 + width * (k + 0.5)
        ok = np.isfinite(mean)
        ax.bar(pos[ok], mean[ok], width, yerr=std[ok], capsize=2, label=label)
    ax.set_xticks(x, arms, rotation=20)


def fig_miou_tta(agg: dict, arms: list[str], path: str | os.PathLike, scale: str = "") -> None:
    """The paper's ablation layout: val mIoU per arm without and with 4-flip TTA, and the TTA gap."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), gridspec_kw={"width_ratios": [3, 2, 2]})
    _bars(axes[0], arms, [("no TTA", [_get(agg, a, "miou") for a in arms]),
                          ("4-flip TTA", [_get(agg, a, "miou_tta") for a in arms])], 100.0)
    n = sorted({_get(agg, a, "miou")[2] for a in arms})
    seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]}–{n[-1]}"
    axes[0].set(ylabel="val mIoU (%)", title=f"view / stage / TCL ablation (seeds per arm: {seeds})")
    axes[0].legend(fontsize=8)
    _bars(axes[1], arms, [("TTA − no TTA", [_get(agg, a, "tta_gap") for a in arms])], 100.0)
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set(ylabel="mIoU gain from TTA (points)", title="TTA gap")
    _bars(axes[2], arms, [("flip consistency", [_get(agg, a, "flip_consistency") for a in arms])], 100.0)
    axes[2].set(ylabel="labels unchanged under x/y flips (%)", title="flip consistency", ylim=(0, 100))
    _save(fig, path, scale)


def fig_iou_per_class(agg: dict, arms: list[str], path: str | os.PathLike, scale: str = "",
                      classes: list[str] | None = None) -> None:
    """Per-class val IoU (no TTA) of every arm; ``classes`` gives the order (default: sorted)."""
    have = {k[4:] for a in arms for k in agg["arms"].get(a, {}) if k.startswith("iou_") and not k.startswith("iou_tta_")}
    names = [c for c in classes or [] if c in have] + sorted(have - set(classes or []))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names) + 2), 4))
    if names:
        width = 0.8 / max(len(arms), 1)
        x = np.arange(len(names))
        for k, a in enumerate(arms):
            vals = [_get(agg, a, f"iou_{c}") for c in names]
            mean = 100 * np.array([v[0] for v in vals])
            std = 100 * np.array([v[1] for v in vals])
            ok = np.isfinite(mean)
            ax.bar((x - 0.4 + width * (k + 0.5))[ok], mean[ok], width, yerr=std[ok], capsize=1.5, label=a)
        ax.set_xticks(x, names, rotation=20)
        ax.legend(fontsize=7, ncol=3)
    ax.set(ylabel="val IoU (%), no TTA", title="per-class IoU")
    _save(fig, path, scale)


def fig_latency(agg: dict, arms: list[str], path: str | os.PathLike, scale: str = "") -> None:
    """Median ms/scan single pass vs 4-flip TTA per arm (CPU; threads in the runs' meta)."""
    have = [a for a in arms if np.isfinite(_get(agg, a, "latency_ms")[0])]
    fig, ax = plt.subplots(figsize=(7, 4))
    if have:
        _bars(ax, have, [("single pass", [_get(agg, a, "latency_ms") for a in have]),
                         ("4-flip TTA", [_get(agg, a, "latency_tta_ms") for a in have])])
        for i, a in enumerate(have):
            r = _get(agg, a, "tta_cost_ratio")[0]
            top = _get(agg, a, "latency_tta_ms")[0]
            if np.isfinite(r) and np.isfinite(top):
                ax.text(i + 0.2, top, f"×{r:.1f}", ha="center", va="bottom", fontsize=7)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no latency metrics", ha="center", va="center", transform=ax.transAxes)
    ax.set(ylabel="latency (ms / scan, median)", title="inference latency, CPU")
    _save(fig, path, scale)


# one colour per label id (0 = ignore); SemanticKITTI's 20 ids cycle through tab20
def _class_colours(num_classes: int) -> np.ndarray:
    """(K, 4) RGBA per label id: light grey for 0 (ignore), then tab10 (tab20 beyond 10
    classes) without its greys, so that no class looks like an ignored point."""
    cmap = plt.get_cmap("tab10" if num_classes <= 10 else "tab20")
    greys = {7} if cmap.N == 10 else {14, 15}
    palette = [cmap(i) for i in range(cmap.N) if i not in greys]
    cols = np.array([(0.75, 0.75, 0.75, 1.0)] + [palette[(i - 1) % len(palette)] for i in range(1, num_classes)])
    return cols


def fig_bev_scene(points: np.ndarray, labels: np.ndarray, pred: np.ndarray, pred_tta: np.ndarray,
                  class_names: list[str], path: str | os.PathLike, *, arm: str, miou: float, miou_tta: float,
                  extent: tuple[float, float, float, float], scale: str = "") -> None:
    """Bird's-eye view of one validation scan: ground truth | prediction | 4-flip TTA | errors.

    ``points`` (N, 4) x, y, z [m], intensity; ``labels``, ``pred``, ``pred_tta`` (N,) label ids
    (0 = ignore); ``class_names`` for ids 1..K−1; ``extent`` = (x_min, x_max, y_min, y_max) m
    (the BEV grid's range). Points are drawn low to high so roofs and crowns sit on top.
    """
    k = len(class_names) + 1
    cols = _class_colours(k)
    order = np.argsort(points[:, 2])
    x, y = points[order, 0], points[order, 1]
    lab, pr, pt = labels[order], pred[order], pred_tta[order]
    wrong = (pr != lab) & (lab != 0)
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.8), sharex=True, sharey=True)
    panels = [("ground truth", cols[lab]), (f"{arm}: prediction (mIoU {100 * miou:.1f})", cols[pr]),
              (f"{arm}: 4-flip TTA (mIoU {100 * miou_tta:.1f})", cols[pt]),
              (f"errors of the single pass ({100 * wrong.sum() / max((lab != 0).sum(), 1):.1f}% of labelled points)",
               np.where(wrong[:, None], np.array([[0.85, 0.1, 0.1, 1.0]]), np.array([[0.8, 0.8, 0.8, 1.0]])))]
    for ax, (title, c) in zip(axes, panels):
        ax.scatter(x, y, c=c, s=0.6, linewidths=0, rasterized=True)
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_xlabel("x [m]")
    axes[0].set_ylabel("y [m]")
    handles = [plt.Line2D([], [], marker="o", ls="", color=cols[i], label=n) for i, n in enumerate(class_names, 1)]
    axes[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    _save(fig, path, scale)
