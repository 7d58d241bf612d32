"""Figures of the Group DETR v2 study (Agg backend, atomic writes).

Inputs: the aggregated metrics (``engine.metrics.aggregate``). ± is the sample std over
seeds; Δ the mean paired difference to the stage's reference arm ± its 95 % half-width (arms of
a seed share the detector init and the data order).
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from paperzoo.engine.plots import (  # noqa: E402
    arm_stat, delta_text, save_figure, save_table_figure, stat_text, write_md_csv)

FIGURES = ("table_arms", "fig_ap_curves", "fig_groups")
_LABEL = "Group DETR v2 (arXiv 2211.03594) reproduction"
def _fmt_gd(v, scale=100.0, digits=1) -> str:
    return stat_text(v, scale, digits, missing="—")


REFS = {"detpre": "g1", "finetune": "ft_noD"}   # the paired differences' reference arm per stage


def curve_steps(agg: dict, arm: str) -> list[int]:
    """The steps of arm ``arm``'s AP-vs-step curve (metrics ``AP_s<step>``), ascending."""
    keys = agg["arms"].get(arm, {})
    return sorted(int(m.group(1)) for k in keys if (m := re.fullmatch(r"AP_s(\d+)", k)))


def table_arms(agg: dict, stages: dict[str, list[str]], refs: dict[str, str], outdir) -> Path:
    """``table_arms.{md,csv,png}``: per stage and arm K, AP, AP_auc (x100), paired ΔAP and ΔAP_auc
    to the stage's reference arm, NMS gains, per-group AP spread, train ms/step, eval ms/img,
    parameters (all / used at inference)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    head = ["stage", "arm", "K", "AP", "AP_auc", "ΔAP", "ΔAP_auc", "NMS gain g0", "NMS gain all", "group spread",
            "train ms/step", "eval ms/img", "params (inference)"]
    rows, raw = [], []
    for stage, arms in stages.items():
        ref = refs[stage]
        for arm in arms:
            g = lambda k: arm_stat(agg, arm, k)  # noqa: E731
            dap, d, h = delta_text(agg, arm, ref, "AP")
            dauc, da, ha = delta_text(agg, arm, ref, "AP_auc")
            k = g("num_groups")[0]
            p, pi = g("params")[0], g("params_inference")[0]
            rows.append([stage, arm, "—" if not np.isfinite(k) else f"{k:.0f}", _fmt_gd(g("AP")), _fmt_gd(g("AP_auc")), dap,
                         dauc, _fmt_gd(g("nms_gain_g0")), _fmt_gd(g("nms_gain_allgroups")), _fmt_gd(g("per_group_AP_spread")),
                         _fmt_gd(g("train_ms_per_step"), 1.0, 0), _fmt_gd(g("eval_ms_per_img"), 1.0, 2),
                         "—" if not np.isfinite(p) else f"{p / 1e3:.0f} k ({pi / 1e3:.0f} k)"])
            raw.append([stage, arm, k, *g("AP")[:2], *g("AP_auc")[:2], d, h, da, ha, g("nms_gain_g0")[0],
                        g("nms_gain_allgroups")[0], g("per_group_AP_spread")[0], g("train_ms_per_step")[0],
                        g("eval_ms_per_img")[0], p, pi, g("AP")[2]])
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    md.append("\nAP x100 (group 0, no NMS: the deployed model), mean ± std over seeds; AP_auc: mean of the "
              "AP-vs-step curve; Δ: mean paired difference to " + ", ".join(f"{r} ({s})" for s, r in refs.items())
              + " ± 95 % half-width; NMS gain: AP with class-wise NMS minus without (g0: group 0; all: every "
              f"group pooled); group spread: max - min AP over groups; scale {agg.get('scale', '')}")
    write_md_csv(outdir, "table_arms", md,
                 ["stage", "arm", "num_groups", "AP_mean", "AP_std", "AP_auc_mean", "AP_auc_std", "dAP", "dAP_hw95",
                  "dAP_auc", "dAP_auc_hw95", "nms_gain_g0", "nms_gain_allgroups", "per_group_AP_spread",
                  "train_ms_per_step", "eval_ms_per_img", "params", "params_inference", "n"], raw)
    path = outdir / "table_arms.png"
    save_table_figure(rows, head, path, title="Group DETR v2 stages and arms",
                      label=f"{_LABEL}, scale {agg.get('scale', '')}", width=13, fontsize=7, row_height=0.34)
    return path


def fig_ap_curves(agg: dict, stages: dict[str, list[str]], path, scale: str = "") -> Path:
    """AP (group 0) against training step per arm, mean ± std over seeds; one panel per stage."""
    fig, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 3.4), squeeze=False)
    for ax, (stage, arms) in zip(axes[0], stages.items()):
        for i, arm in enumerate(arms):
            steps = curve_steps(agg, arm)
            if not steps:
                continue
            v = np.array([arm_stat(agg, arm, f"AP_s{s}")[:2] for s in steps])
            ax.plot(steps, 100 * v[:, 0], "o-", color=f"C{i}", label=arm)
            ax.fill_between(steps, 100 * (v[:, 0] - v[:, 1]), 100 * (v[:, 0] + v[:, 1]), color=f"C{i}", alpha=0.2)
        ax.set_title(f"stage {stage}", fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylabel("AP x100 (group 0, val)")
        ax.legend(fontsize=7)
    save_figure(fig, path, f"{_LABEL}, scale {scale}")
    return Path(path)


def fig_groups(agg: dict, arm: str, path, scale: str = "") -> Path:
    """The K-group arm ``arm``: AP of each group alone, and of all groups pooled without /
    with NMS (mean ± std over seeds)."""
    k = int(arm_stat(agg, arm, "num_groups")[0]) if np.isfinite(arm_stat(agg, arm, "num_groups")[0]) else 0
    names = [f"AP_g{g}" for g in range(k)] + ["AP_allgroups_noNMS", "AP_allgroups_NMS"]
    labels = [f"g{g}" for g in range(k)] + ["all, no NMS", "all + NMS"]
    v = np.array([arm_stat(agg, arm, n)[:2] for n in names]) if names else np.zeros((0, 2))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(names) + 1.5), 3.4))
    colors = ["C0"] * k + ["C3", "C2"]
    if len(v):
        ax.bar(np.arange(len(names)), 100 * v[:, 0], yerr=100 * v[:, 1], capsize=2, color=colors)
    ax.set_xticks(np.arange(len(names)), labels, rotation=30, fontsize=7)
    ax.set_ylabel("AP x100 (val)")
    ax.set_title(f"{arm}: each query group alone, and all groups pooled", fontsize=9)
    save_figure(fig, path, f"{_LABEL}, scale {scale}")
    return Path(path)


def make_all(block: dict, agg: dict, outdir: Path, *, scale: str) -> list[Path]:
    """Every figure of ``FIGURES`` from the config's arms (references ``REFS``; the group figure
    for the detpre arm with the most groups)."""
    stages = {s: [a for a in block["arms"][s] if a in agg["arms"]] for s in ("detpre", "finetune")}
    grouped = max(stages["detpre"], key=lambda a: block["arms"]["detpre"][a]["num_groups"], default="")
    return [table_arms(agg, stages, REFS, outdir), fig_ap_curves(agg, stages, outdir / "fig_ap_curves.png", scale),
            fig_groups(agg, grouped, outdir / "fig_groups.png", scale)]
