"""Figures of the KD-DETR study, one function per figure (Agg backend, atomic writes).

Each takes the aggregated metrics (``engine.metrics.aggregate``), the arms in table order
and an output path; ± is the sample std over seeds. ``table_sampling_ablation`` writes the
paper's sampling-ablation layout (points used → AP / AP50 / AP75) as Markdown, CSV and PNG.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from paperzoo.engine.plots import arm_stat, paired_delta, save_figure, write_md_csv  # noqa: E402

FIGURES = ("table_sampling_ablation", "fig_ap_per_arm", "fig_consistency")
_LABEL = "KD-DETR (arXiv 2211.08071) reproduction"
COLUMNS = ("AP", "AP50", "AP75")


def _save(fig, path, scale: str) -> None:
    save_figure(fig, path, f"{_LABEL}, scale {scale}")


_get = arm_stat


def paper_rows() -> dict[str, float]:
    """The paper's sampling-ablation AP by our arm, read from ``paper.yaml``'s
    ``sampling_ablation`` reference (slides transcription, unconfirmed): its ``none`` row is
    our ``baseline``, ``general_specific_frw`` our ``kd_detr``, the others share the name."""
    from paperzoo.engine.claims import load_paper

    ref = {r["id"]: r for r in load_paper(Path(__file__).parent / "paper.yaml")["references"]}
    rename = {"none": "baseline", "general_specific_frw": "kd_detr"}
    return {rename.get(k, k): float(v) for k, v in ref["sampling_ablation"]["value"].items()}


def points_label(flags: dict) -> str:
    """Arm flags → the paper's "points" column (``none``, ``general + specific + FRW``, ...)."""
    if flags.get("naive"):
        return "own queries, GT-matched"
    sets = [n for n in ("general", "specific") if flags.get(n)]
    if not sets:
        return "none"
    return " + ".join(sets) + (" + FRW" if flags.get("frw", True) else "")


def table_sampling_ablation(agg: dict, arms: list[str], outdir, *, teacher: dict | None = None,
                            labels: dict | None = None) -> Path:
    """``table_sampling_ablation.{md,csv,png}`` in ``outdir``: AP / AP50 / AP75 (x100, mean ±
    std over seeds) per arm, the paired AP difference to ``baseline`` (± 95 % half-width) and
    the paper's row where it has one (slides transcription, unconfirmed)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for arm in arms:
        vals = [_get(agg, arm, c) for c in COLUMNS]
        rows.append([arm, points_label((labels or {}).get(arm, {}))] + vals)
    head = ["arm", "points"] + [f"{c} (x100)" for c in COLUMNS] + ["ΔAP vs baseline (paired)", "paper AP"]
    fmt = lambda v: "n/a" if not np.isfinite(v[0]) else f"{100 * v[0]:.1f} ± {100 * v[1]:.1f}"  # noqa: E731

    def delta(arm):
        if arm == "baseline":
            return "—"
        d, h, n = paired_delta(agg, arm, "baseline")
        return "n/a" if not np.isfinite(d) else f"{100 * d:+.1f} ± {100 * h:.1f}" if np.isfinite(h) else f"{100 * d:+.1f}"

    rows_paper = paper_rows()
    paper = lambda arm: f"{rows_paper[arm]:.1f}" if arm in rows_paper else "—"  # noqa: E731
    cells = [[r[0], r[1]] + [fmt(v) for v in r[2:]] + [delta(r[0]), paper(r[0])] for r in rows]
    if teacher is not None:
        cells.append(["teacher", "(1 run)"] + [f"{100 * teacher['metrics'].get(c, np.nan):.1f}" for c in COLUMNS]
                     + ["", ""])
    n = max((r[2][2] for r in rows), default=0)
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(c) + " |" for c in cells]
    md.append(f"\nmean ± std over {n} seeds; ΔAP: mean paired difference ± 95 % half-width; paper AP: R18 student on "
              f"COCO, from third-party slides (unconfirmed); scale {agg.get('scale', '')}")
    csv_rows = []
    for r in rows:
        d, h, _ = paired_delta(agg, r[0], "baseline")
        csv_rows.append(r[:2] + [x for v in r[2:] for x in v[:2]] + [r[2][2], d, h, rows_paper.get(r[0], "")])
    write_md_csv(outdir, "table_sampling_ablation", md,
                 ["arm", "points"] + [f"{c}_{s}" for c in COLUMNS for s in ("mean", "std")]
                 + ["n", "dAP_vs_baseline", "dAP_halfwidth95", "paper_AP"], csv_rows)
    fig, ax = plt.subplots(figsize=(11.5, 0.32 * (len(cells) + 1) + 0.8))
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=head, loc="center", cellLoc="left",
                     colWidths=[0.17, 0.22, 0.11, 0.11, 0.11, 0.17, 0.08])
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    ax.set_title(f"Sampling ablation in the paper's layout (its numbers: slides, not verified), {n} seeds", fontsize=9)
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
    """Teacher-student agreement (FRW-weighted box IoU, left; class KL, right) on shared
    points (teacher anchors), general points and each model's own queries, all paired by the
    same Hungarian rule; hatched bars: the image-shuffled null of shared and own."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    x = np.arange(len(arms))
    kinds = (("shared", "shared (teacher anchors)", ""), ("shared_null", "shared, shuffled null", "//"),
             ("own", "own queries", ""), ("own_null", "own, shuffled null", "//"),
             ("general", "general points", ""))
    wbar = 0.8 / len(kinds)
    for ax, metric, ylabel in ((axes[0], "iou", "FRW-weighted box IoU"), (axes[1], "kl", "FRW-weighted KL (nats)")):
        for k, (kind, label, hatch) in enumerate(kinds):
            v = [_get(agg, a, f"diag_{metric}_{kind}") for a in arms]
            ax.bar(x - 0.4 + wbar * (k + 0.5), [m for m, _, _ in v], wbar, yerr=[s for _, s, _ in v], capsize=2,
                   label=label, hatch=hatch, alpha=0.55 if hatch else 1.0)
        ax.set_xticks(x, arms, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=5, fontsize=7, bbox_to_anchor=(0.5, 0.93))
    fig.suptitle("Consistency of teacher and student predictions (same pairing rule on every set)", fontsize=9)
    save_figure(fig, path, f"{_LABEL}, scale {scale}", rect=(0, 0, 1, 0.9))
    return Path(path)
