"""Figures of the APIS study (Agg backend, atomic writes).

Inputs: the aggregated metrics (``engine.metrics.aggregate``) and, for the picture of the
selected points, seed 0's final checkpoints of each strategy (they hold every instance's points)
with the training data. ± is the sample std over seeds; Δ the mean paired difference to the
random strategy ± its 95 % half-width (the strategies of a seed share P0, the points and the
batches).
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from paperzoo.engine.plots import (  # noqa: E402
    arm_stat, delta_text, paired_delta, save_figure, save_table_figure, stat_text, write_md_csv)

FIGURES = ("table_strategies", "fig_miou_points", "fig_selected_points")
REF = "random"
_LABEL = "APIS (arXiv 2207.11493) reproduction"
_COLORS = {"random": "C0", "entropy": "C3", "bald": "C2", "oracle": "C7"}


def budgets(agg: dict, arm: str = REF) -> list[int]:
    """The points-per-instance budgets n of ``miou_p<n>`` in arm ``arm``, ascending."""
    keys = agg["arms"].get(arm, {})
    return sorted(int(m.group(1)) for k in keys if (m := re.fullmatch(r"miou_p(\d+)", k)))


def _f(v, scale=100.0, digits=1) -> str:
    return stat_text(v, scale, digits, missing="—")


def table_strategies(agg: dict, strategies: list[str], outdir) -> Path:
    """``table_strategies.{md,csv,png}``: per strategy, mIoU x100 at every budget, paired Δ mIoU to
    random at 2 points and at the last round, segm AP (GT boxes) at the last round, repeat rate
    and selection time; the full-mask reference in the last row."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ns = budgets(agg)
    last = ns[-1] if ns else 1
    head = (["strategy"] + [f"mIoU {n} pt" for n in ns]
            + ["Δ mIoU 2 pt", f"Δ mIoU {last} pt", f"segm AP {last} pt", "repeat %", "selection s"])
    rows, raw = [], []
    for s in strategies:
        g = lambda k: arm_stat(agg, s, k)  # noqa: E731
        d2, dd2, h2 = delta_text(agg, s, REF, "miou_p2") if 2 in ns else ("—", np.nan, np.nan)
        dl, ddl, hl = delta_text(agg, s, REF, f"miou_p{last}")
        sel = [arm_stat(agg, s, f"sel_s_p{n}")[0] for n in ns[1:]]
        rows.append([s] + [_f(g(f"miou_p{n}")) for n in ns] + [d2, dl, _f(g(f"segmAP_p{last}")),
                                                              _f(g("repeat_rate"), 100, 1),
                                                              f"{np.nanmean(sel):.2f}" if sel else "—"])
        raw.append([s] + [g(f"miou_p{n}")[0] for n in ns] + [dd2, h2, ddl, hl, g(f"segmAP_p{last}")[0],
                                                             g("repeat_rate")[0], g("miou_p1")[2]])
    fm = arm_stat(agg, "fullmask", "miou")
    fm_ap = arm_stat(agg, "fullmask", "segmAP")
    rows.append(["full mask"] + ["—"] * (len(ns) - 1) + [_f(fm), "—", "—", _f(fm_ap), "—", "—"])
    raw.append(["fullmask"] + [np.nan] * (len(ns) - 1) + [fm[0], np.nan, np.nan, np.nan, np.nan, fm_ap[0], np.nan,
                                                         fm[2]])
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    md.append(f"\nmIoU x100 on the val instances (masks zeroed outside the GT box), mean ± std over seeds; Δ: mean "
              f"paired difference to {REF} ± 95 % half-width; segm AP: COCO segm AP x100 with GT boxes and classes "
              f"(mask quality only, not detector AP); repeat: selected pixel already labelled (official: not "
              f"excluded); scale {agg.get('scale', '')}")
    write_md_csv(outdir, "table_strategies", md,
                 ["strategy"] + [f"miou_p{n}" for n in ns] + ["d_miou_p2", "d_miou_p2_hw95", "d_miou_last",
                                                               "d_miou_last_hw95", "segmAP_last", "repeat_rate", "n"],
                 raw)
    path = outdir / "table_strategies.png"
    save_table_figure(rows, head, path, title="APIS strategies: val mIoU x100 by points per instance",
                      label=f"{_LABEL}, scale {agg.get('scale', '')}", width=12, fontsize=7.5, row_height=0.3)
    return path


def fig_miou_points(agg: dict, strategies: list[str], path, scale: str = "") -> Path:
    """Left: val mIoU against points per instance per strategy (mean ± std over seeds) with the
    full-mask reference; right: each model-based strategy's paired difference to random per
    budget (± 95 %), the oracle left out (its scale would flatten the others)."""
    ns = budgets(agg)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for s in strategies:
        v = np.array([arm_stat(agg, s, f"miou_p{n}")[:2] for n in ns]) if ns else np.zeros((0, 2))
        if not len(v):
            continue
        c = _COLORS.get(s)
        a1.plot(ns, 100 * v[:, 0], "o-", color=c, label=s)
        a1.fill_between(ns, 100 * (v[:, 0] - v[:, 1]), 100 * (v[:, 0] + v[:, 1]), color=c, alpha=0.15)
        if s not in (REF, "oracle"):      # the oracle's scale would flatten the others (left panel)
            d = np.array([paired_delta(agg, s, REF, f"miou_p{n}")[:2] for n in ns])
            off = 0.06 * (strategies.index(s) - len(strategies) / 2)
            a2.errorbar(np.array(ns) + off, 100 * d[:, 0], yerr=100 * np.nan_to_num(d[:, 1]), fmt="o-", color=c,
                        capsize=3, label=f"{s} − random")
    fm, fs, _ = arm_stat(agg, "fullmask", "miou")
    if np.isfinite(fm):
        a1.axhline(100 * fm, color="k", ls="--", lw=1, label="full mask")
        a1.axhspan(100 * (fm - fs), 100 * (fm + fs), color="k", alpha=0.08)
    a1.set_xlabel("labelled points per instance")
    a1.set_ylabel("val mIoU x100 (GT boxes)")
    a1.set_xticks(ns)
    a1.legend(fontsize=7)
    a1.set_title("mask quality vs annotation budget", fontsize=9)
    a2.axhline(0, color="k", lw=0.8)
    a2.set_xlabel("labelled points per instance")
    a2.set_ylabel("Δ mIoU x100 vs random (paired, ± 95 %)")
    a2.set_xticks(ns)
    a2.legend(fontsize=7)
    a2.set_title("gain over random points, per seed pair (oracle: left panel)", fontsize=9)
    save_figure(fig, path, f"{_LABEL}, scale {scale}")
    return Path(path)


def fig_selected_points(block: dict, data_dir, ckpt_dir, strategies: list[str], path, scale: str = "",
                        n_show: int = 6) -> Path:
    """Seed 0: the points each strategy labelled on the first ``n_show`` train instances that are
    at least 12 px wide (green: foreground, red: background; the P0 point ringed), over the
    visible mask's outline and the box."""
    from paperzoo.engine.checkpoint import load_checkpoint

    from .instances import load_instances

    train, _ = load_instances(block, data_dir)
    pts = {s: load_checkpoint(Path(ckpt_dir) / s / "seed0" / "model.pt") for s in strategies}
    wide = [i for i in range(len(train)) if float(train.boxes[i, 2] - train.boxes[i, 0]) >= 12][:n_show]
    fig, axes = plt.subplots(len(strategies), len(wide), figsize=(1.6 * len(wide) + 0.6, 1.7 * len(strategies)),
                             squeeze=False)
    img = train.images
    lo, hi = img.amin(), img.amax()
    for r, s in enumerate(strategies):
        xy, lab = pts[s]["points_xy"], pts[s]["points_label"]
        for c, i in enumerate(wide):
            ax = axes[r][c]
            x0, y0, x1, y1 = (float(v) for v in train.boxes[i])
            pad = 3
            im = ((img[int(train.img_index[i])] - lo) / (hi - lo)).permute(1, 2, 0).numpy()
            ax.imshow(im, interpolation="nearest")
            ax.contour(train.masks[i].numpy().astype(float), levels=[0.5], colors="w", linewidths=0.6)
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="y", lw=0.6))
            p, lb = xy[i].numpy(), lab[i].numpy()
            ax.scatter(p[:, 0], p[:, 1], s=14, c=np.where(lb > 0.5, "lime", "red"), edgecolors="k", linewidths=0.4)
            ax.scatter(p[:1, 0], p[:1, 1], s=46, facecolors="none", edgecolors="w", linewidths=0.8)
            ax.set_xlim(x0 - pad, x1 + pad)
            ax.set_ylim(y1 + pad, y0 - pad)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(s, fontsize=8)
    fig.suptitle("selected points (seed 0; green = on the object, red = not; ringed = P0's random point)", fontsize=8)
    save_figure(fig, path, f"{_LABEL}, scale {scale}")
    return Path(path)


def make_all(block: dict, agg: dict, outdir: Path, *, scale: str, data_dir=None, ckpt_dir=None) -> list[Path]:
    strategies = [s for s in block["strategies"] if s in agg["arms"]]
    out = [table_strategies(agg, strategies, outdir),
           fig_miou_points(agg, strategies, outdir / "fig_miou_points.png", scale)]
    if data_dir is not None and ckpt_dir is not None:
        out.append(fig_selected_points(block, data_dir, ckpt_dir, strategies, outdir / "fig_selected_points.png",
                                       scale))
    return out
