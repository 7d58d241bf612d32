"""Figures of the KD-DETR study, one function per figure (Agg backend, atomic writes).

Each takes the aggregated metrics (``engine.metrics.aggregate``), the arms in table order
and an output path; ± is the sample std over seeds. ``table_sampling_ablation`` writes the
paper's sampling-ablation layout (points used → AP / AP50 / AP75) as Markdown, CSV and PNG.
"""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from paperzoo.engine.io import atomic_path  # noqa: E402
from paperzoo.engine.plots import arm_stat, save_figure  # noqa: E402

FIGURES = ("table_sampling_ablation", "fig_ap_per_arm", "fig_consistency")
_LABEL = "KD-DETR (arXiv 2211.08071) reproduction"
COLUMNS = ("AP", "AP50", "AP75")


def _save(fig, path, scale: str) -> None:
    save_figure(fig, path, f"{_LABEL}, scale {scale}")


_get = arm_stat


def points_label(flags: dict) -> str:
    """Arm flags → the paper's "points" column (``none``, ``general + specific + FRW``, ...)."""
    if flags.get("naive"):
        return "own queries, matched"
    sets = [n for n in ("general", "specific") if flags.get(n)]
    if not sets:
        return "none"
    return " + ".join(sets) + (" + FRW" if flags.get("frw", True) else "")


def table_sampling_ablation(agg: dict, arms: list[str], outdir, *, teacher: dict | None = None,
                            labels: dict | None = None) -> Path:
    """``table_sampling_ablation.{md,csv,png}`` in ``outdir``: AP / AP50 / AP75 (x100) per arm."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for arm in arms:
        vals = [_get(agg, arm, c) for c in COLUMNS]
        rows.append([arm, points_label((labels or {}).get(arm, {}))] + vals)
    head = ["arm", "points"] + [f"{c} (x100)" for c in COLUMNS]
    fmt = lambda v: "n/a" if not np.isfinite(v[0]) else f"{100 * v[0]:.1f} ± {100 * v[1]:.1f}"  # noqa: E731
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join([r[0], r[1]] + [fmt(v) for v in r[2:]]) + " |" for r in rows]
    if teacher is not None:
        md.append("| teacher | (teacher, 1 run) | " + " | ".join(
            f"{100 * teacher['metrics'].get(c, np.nan):.1f}" for c in COLUMNS) + " |")
    n = max((r[2][2] for r in rows), default=0)
    md.append(f"\nmean ± std over {n} seeds; scale {agg.get('scale', '')}")
    with atomic_path(outdir / "table_sampling_ablation.md") as tmp:
        Path(tmp).write_text("\n".join(md) + "\n")
    with atomic_path(outdir / "table_sampling_ablation.csv") as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["arm", "points"] + [f"{c}_{s}" for c in COLUMNS for s in ("mean", "std")] + ["n"])
            for r in rows:
                w.writerow(r[:2] + [x for v in r[2:] for x in v[:2]] + [r[2][2]])
    cells = [[r[0], r[1]] + [fmt(v) for v in r[2:]] for r in rows]
    if teacher is not None:
        cells.append(["teacher", "(1 run)"] + [f"{100 * teacher['metrics'].get(c, np.nan):.1f}" for c in COLUMNS])
    fig, ax = plt.subplots(figsize=(9.5, 0.32 * (len(cells) + 1) + 0.8))
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=head, loc="center", cellLoc="left",
                     colWidths=[0.24, 0.31, 0.15, 0.15, 0.15])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    ax.set_title(f"Sampling ablation in the paper's layout (its table: from slides, not verified), mean ± std over {n} seeds",
                 fontsize=9)
    path = outdir / "table_sampling_ablation.png"
    _save(fig, path, agg.get("scale", ""))
    return path


def fig_ap_per_arm(agg: dict, arms: list[str], path, scale: str = "", teacher: dict | None = None) -> Path:
    """Bar chart of COCO AP and AP50 (x100) per arm, teacher AP as a dashed line."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    x = np.arange(len(arms))
    for k, name in enumerate(("AP", "AP50")):
        v = [_get(agg, a, name) for a in arms]
        ax.bar(x - 0.2 + 0.4 * k, [100 * m for m, _, _ in v], 0.4, yerr=[100 * s for _, s, _ in v], capsize=2,
               label=name)
    if teacher is not None and "AP" in teacher.get("metrics", {}):
        ax.axhline(100 * teacher["metrics"]["AP"], ls="--", color="0.3", lw=1, label="teacher AP")
    ax.set_xticks(x, arms, rotation=20)
    ax.set_ylabel("COCO bbox (x100)")
    ax.legend(fontsize=7)
    _save(fig, path, scale)
    return Path(path)


def fig_consistency(agg: dict, arms: list[str], path, scale: str = "") -> Path:
    """Teacher-student box IoU (left) and class KL (right) on shared vs matched own queries."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    x = np.arange(len(arms))
    kinds = (("shared", "shared (teacher anchors)"), ("general", "shared (random anchors)"),
             ("matched", "own queries, matched"))
    for ax, metric, ylabel in ((axes[0], "iou", "mean box IoU"), (axes[1], "kl", "mean class KL (nats)")):
        for k, (kind, label) in enumerate(kinds):
            v = [_get(agg, a, f"diag_{metric}_{kind}") for a in arms]
            ax.bar(x - 0.3 + 0.3 * k, [m for m, _, _ in v], 0.3, yerr=[s for _, s, _ in v], capsize=2, label=label)
        ax.set_xticks(x, arms, rotation=25, fontsize=7)
        ax.set_ylabel(ylabel)
    axes[0].legend(fontsize=6)
    fig.suptitle("Consistency of teacher and student predictions", fontsize=9)
    _save(fig, path, scale)
    return Path(path)
