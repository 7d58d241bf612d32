"""Figures of the CFNet study, one function per figure (Agg backend, atomic writes).

Each takes the aggregated metrics (``engine.metrics.aggregate``) and the arms in table
order; ± is the sample std over seeds, Δ the mean paired difference to the baseline arm
± its 95 % half-width (seeds share the data order).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from paperzoo.engine.plots import (  # noqa: E402
    arm_stat, paired_delta, save_figure, save_table_figure, stat_text, write_md_csv)

FIGURES = ("table_arms", "fig_ap_per_arm", "fig_ap_vs_cost")
_LABEL = "CFNet (arXiv 2302.06052) reproduction"


def table_arms(agg: dict, arms: list[str], outdir, *, baseline: str) -> Path:
    """``table_arms.{md,csv,png}``: cost (parameters of backbone + neck, ratio to the
    baseline, forward GFLOPs per image, training img/s) and accuracy (AP, AP50, AP_S scaled,
    AP_S absolute, x100) per arm, with the paired AP difference to ``baseline``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    head = ["arm", "params (k)", "params ratio", "GFLOPs/img", "train img/s", "AP", "AP50", "AP_S", "AP_S abs",
            f"ΔAP vs {baseline}"]
    rows, raw = [], []
    for arm in arms:
        g = lambda k: arm_stat(agg, arm, k)  # noqa: E731
        d, h, _ = paired_delta(agg, arm, baseline) if arm != baseline else (np.nan, np.nan, 0)
        delta = "—" if arm == baseline else ("n/a" if not np.isfinite(d) else
                                             f"{100 * d:+.1f} ± {100 * h:.1f}" if np.isfinite(h) else f"{100 * d:+.1f}")
        rows.append([arm, f"{g('params')[0] / 1e3:.1f}", f"{g('params_ratio')[0]:.3f}", f"{g('gflops')[0]:.3f}",
                     f"{g('train_img_per_s')[0]:.0f}", stat_text(g("AP")), stat_text(g("AP50")), stat_text(g("AP_S")),
                     stat_text(g("AP_S_abs")), delta])
        raw.append([arm] + [g(k)[0] for k in ("params", "params_ratio", "gflops", "train_img_per_s")]
                   + [x for k in ("AP", "AP50", "AP_S", "AP_S_abs") for x in g(k)[:2]] + [d, h, g("AP")[2]])
    n = max((arm_stat(agg, a, "AP")[2] for a in arms), default=0)
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    md.append(f"\nmean ± std over {n} seeds (AP x100); ΔAP: mean paired difference ± 95 % half-width; "
              f"params: backbone + neck; GFLOPs: whole detector, forward; img/s: contended CPU timing, 1 thread; "
              f"scale {agg.get('scale', '')}")
    write_md_csv(outdir, "table_arms", md,
                 ["arm", "params", "params_ratio", "gflops", "train_img_per_s", "AP_mean", "AP_std", "AP50_mean",
                  "AP50_std", "AP_S_mean", "AP_S_std", "AP_S_abs_mean", "AP_S_abs_std", "dAP_vs_baseline",
                  "dAP_halfwidth95", "n"], raw)
    path = outdir / "table_arms.png"
    save_table_figure(rows, head, path, title=f"CFNet arms at matched parameters, {n} seeds",
                      label=f"{_LABEL}, scale {agg.get('scale', '')}")
    return path


def fig_ap_per_arm(agg: dict, arms: list[str], path, scale: str = "") -> Path:
    """Bars of AP, AP_S (scaled) and AP_S (absolute) x100 per arm, ± std over seeds."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    x = np.arange(len(arms))
    names = (("AP", "AP"), ("AP_S", "AP_S (scaled COCO areas)"), ("AP_S_abs", "AP_S (absolute areas)"))
    for k, (name, label) in enumerate(names):
        v = [arm_stat(agg, a, name) for a in arms]
        ax.bar(x - 0.27 + 0.27 * k, [100 * m for m, _, _ in v], 0.27, yerr=[100 * s for _, s, _ in v], capsize=2,
               label=label)
    ax.set_xticks(x, arms, rotation=15)
    ax.set_ylabel("COCO bbox (x100)")
    ax.legend(fontsize=7)
    save_figure(fig, path, f"{_LABEL}, scale {scale}")
    return Path(path)


def fig_ap_vs_cost(agg: dict, arms: list[str], path, scale: str = "") -> Path:
    """AP (x100, ± std) against forward MFLOPs per image (left) and parameters (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, label, div in ((axes[0], "gflops", "forward MFLOPs / image", 1e-3),
                                (axes[1], "params", "backbone + neck parameters (k)", 1e3)):
        for k, a in enumerate(arms):
            m, s, _ = arm_stat(agg, a, "AP")
            ax.errorbar(arm_stat(agg, a, key)[0] / div, 100 * m, yerr=100 * s, fmt="o", capsize=3, color=f"C{k}",
                        label=a)
        ax.set_xlabel(label)
        ax.set_ylabel("AP (x100)")
    axes[0].legend(fontsize=7)
    save_figure(fig, path, f"{_LABEL}, scale {scale}")
    return Path(path)
