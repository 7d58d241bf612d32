"""Figures of the DRKD study, one function per figure (Agg backend, atomic writes).

Each takes the aggregated metrics (``engine.metrics.aggregate``) and the arms in table
order; ± is the sample std over seeds, Δ the mean paired difference to the baseline arm
± its 95 % half-width (arms of seed k share the student init, the data order and the flips).
The teacher's numbers come from the runs' ``teacher_AP`` / ``teacher_AP_S_abs``.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from paperzoo.engine.plots import (  # noqa: E402
    arm_stat, delta_text, paired_delta, save_figure, save_table_figure, stat_text, write_md_csv)

FIGURES = ("table_arms", "fig_ap_per_arm", "fig_delta_vs_baseline")
_LABEL = "DRKD (arXiv 2302.05637) reproduction"


def terms_label(flags: dict) -> str:
    """Arm flags → the distillation terms it uses (``PRD + IRD + INS``, ``none``, ...)."""
    names = [n.upper() if n != "fitnet" else "FitNet" for n in ("fitnet", "prd", "ird", "ins") if flags.get(n)]
    if not names:
        return "none"
    label = " + ".join(names)
    if flags.get("ird") and flags.get("filter", "code") == "none":
        label += " (no filter)"
    return label


def table_arms(agg: dict, arms: list[str], outdir, *, baseline: str, labels: dict | None = None) -> Path:
    """``table_arms.{md,csv,png}``: per arm the distillation terms, AP, AP50, AP75, AP_S
    (absolute areas) x100, the paired ΔAP and ΔAP_S_abs to ``baseline``, and the relation
    diagnostics (``relation_share``, ``fg_energy_gain``); the teacher as a first row."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    labels = labels or {}
    head = ["arm", "terms", "AP", "AP50", "AP75", "AP_S abs", f"ΔAP vs {baseline}", "ΔAP_S abs",
            "relation share", "fg energy gain"]
    rows, raw = [], []
    t_ap, t_aps = arm_stat(agg, baseline, "teacher_AP"), arm_stat(agg, baseline, "teacher_AP_S_abs")
    if np.isfinite(t_ap[0]):
        rows.append(["teacher", "—", stat_text((t_ap[0], 0.0, 1)), "", "", stat_text((t_aps[0], 0.0, 1)), "", "", "", ""])
    for arm in arms:
        g = lambda k: arm_stat(agg, arm, k)  # noqa: E731
        dap, d, h = delta_text(agg, arm, baseline, "AP")
        daps, ds, hs = delta_text(agg, arm, baseline, "AP_S_abs")
        share, gain = g("relation_share"), g("fg_energy_gain")
        share0, gain0 = g("relation_share_init"), g("fg_energy_gain_init")

        def diag(v, v0, digits):
            if not np.isfinite(v[0]):
                return "—"
            return f"{v[0]:.{digits}f}" + (f" (init {v0[0]:.{digits}f})" if np.isfinite(v0[0]) else "")

        rows.append([arm, labels.get(arm, ""), stat_text(g("AP")), stat_text(g("AP50")), stat_text(g("AP75")), stat_text(g("AP_S_abs")),
                     dap, daps, diag(share, share0, 3), diag(gain, gain0, 2)])
        raw.append([arm, labels.get(arm, "")] + [x for k in ("AP", "AP50", "AP75", "AP_S_abs") for x in g(k)[:2]]
                   + [d, h, ds, hs, share[0], gain[0], share0[0], gain0[0], g("AP")[2]])
    n = max((arm_stat(agg, a, "AP")[2] for a in arms), default=0)
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    md.append(f"\nmean ± std over {n} seeds (AP x100); Δ: mean paired difference to {baseline} ± 95 % half-width "
              "(seeds share the student init and the data order); AP_S abs: objects below 12 x 12 px; relation "
              "share: ||phi_t(T) - T|| / ||T|| of the trained teacher-side GloRe units (init: the same units "
              "before training); fg energy gain: foreground/background energy contrast of phi_t(T) - T over that "
              f"of T; scale {agg.get('scale', '')}")
    write_md_csv(outdir, "table_arms", md,
                 ["arm", "terms", "AP_mean", "AP_std", "AP50_mean", "AP50_std", "AP75_mean", "AP75_std",
                  "AP_S_abs_mean", "AP_S_abs_std", "dAP_vs_baseline", "dAP_halfwidth95", "dAP_S_abs_vs_baseline",
                  "dAP_S_abs_halfwidth95", "relation_share", "fg_energy_gain", "relation_share_init",
                  "fg_energy_gain_init", "n"], raw)
    path = outdir / "table_arms.png"
    save_table_figure(rows, head, path, title=f"DRKD arms, one frozen teacher, {n} seeds",
                      label=f"{_LABEL}, scale {agg.get('scale', '')}")
    return path


def fig_ap_per_arm(agg: dict, arms: list[str], path, scale: str = "", baseline: str = "baseline") -> Path:
    """Bars of AP and AP_S (absolute areas) x100 per arm, ± std over seeds; the teacher's as
    dashed lines."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    x = np.arange(len(arms))
    for k, (name, label) in enumerate((("AP", "AP"), ("AP_S_abs", "AP_S (absolute areas)"))):
        v = [arm_stat(agg, a, name) for a in arms]
        ax.bar(x - 0.2 + 0.4 * k, [100 * m for m, _, _ in v], 0.4, yerr=[100 * s for _, s, _ in v], capsize=2,
               label=label, color=f"C{k}")
        t = arm_stat(agg, baseline, f"teacher_{name}")[0]
        if np.isfinite(t):
            ax.axhline(100 * t, color=f"C{k}", ls="--", lw=1, label=f"teacher {label}")
    ax.set_xticks(x, arms, rotation=15)
    ax.set_ylabel("COCO bbox (x100)")
    ax.legend(fontsize=7)
    save_figure(fig, path, f"{_LABEL}, scale {scale}")
    return Path(path)


def fig_delta_vs_baseline(agg: dict, arms: list[str], path, *, baseline: str, scale: str = "") -> Path:
    """Paired ΔAP and ΔAP_S_abs (x100) of every arm to ``baseline``, ± 95 % half-width."""
    others = [a for a in arms if a != baseline]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    x = np.arange(len(others))
    for k, (name, label) in enumerate((("AP", "ΔAP"), ("AP_S_abs", "ΔAP_S (absolute areas)"))):
        d = [paired_delta(agg, a, baseline, name) for a in others]
        ax.bar(x - 0.2 + 0.4 * k, [100 * m if np.isfinite(m) else 0.0 for m, _, _ in d], 0.4,
               yerr=[100 * h if np.isfinite(h) else 0.0 for _, h, _ in d], capsize=2, label=label, color=f"C{k}")
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.set_xticks(x, others, rotation=15)
    ax.set_ylabel(f"paired difference to {baseline} (x100)")
    ax.legend(fontsize=7)
    save_figure(fig, path, f"{_LABEL}, scale {scale}")
    return Path(path)
