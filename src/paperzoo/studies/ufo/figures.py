"""Figures of the UFO study (Agg backend, atomic writes).

Inputs: the aggregated metrics and seed 0's ``ufo_trimmed`` run (its ``meta.found`` holds the
search history of every task). ± is the sample std over seeds; Δ the mean paired difference to
the single-task models ± its 95 % half-width (arms of a seed share the init and the images).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from paperzoo.engine.plots import (  # noqa: E402
    arm_stat, delta_text, paired_delta, save_figure, save_table_figure, stat_text, write_md_csv)

FIGURES = ("table_tasks", "fig_tasks", "fig_trim_search")
ARMS = ("single", "allinone", "ufo_largest", "ufo_trimmed")
REF = "single"
_LABEL = "UFO (arXiv 2207.10341) reproduction"
_COLORS = {"single": "C7", "allinone": "C0", "ufo_largest": "C1", "ufo_trimmed": "C3"}


def _f(v, scale=100.0, digits=1) -> str:
    return stat_text(v, scale, digits, missing="—")


def table_tasks(agg: dict, tasks: list[str], outdir) -> Path:
    """``table_tasks.{md,csv,png}``: per task and arm, Rank-1 and mAP x100, paired Δ mAP to the
    single-task model, parameters of the deployed path and ms per image."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    head = ["task", "arm", "R1", "mAP", "Δ mAP vs single", "params (k)", "ms / img"]
    rows, raw = [], []
    for t in tasks:
        for a in ARMS:
            if a not in agg["arms"]:
                continue
            g = lambda k: arm_stat(agg, a, k)  # noqa: E731
            dm, d, h = delta_text(agg, a, REF, f"mAP_{t}")
            p = g(f"params_{t}")
            rows.append([t, a, _f(g(f"R1_{t}")), _f(g(f"mAP_{t}")), dm,
                         _f(p, 1e-3, 1), _f(g(f"latency_ms_{t}"), 1.0, 3)])
            raw.append([t, a, g(f"R1_{t}")[0], g(f"mAP_{t}")[0], d, h, p[0], g(f"latency_ms_{t}")[0], g(f"mAP_{t}")[2]])
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    md.append(f"\nTest identities (unseen), all-vs-all retrieval; x100, mean ± std over seeds; Δ: mean paired "
              f"difference to the single-task model ± 95 % half-width; params: the deployed task path "
              f"(CosFace weights excluded); ms / img: batch 64, 1 thread, median; scale {agg.get('scale', '')}")
    write_md_csv(outdir, "table_tasks", md, ["task", "arm", "R1", "mAP", "d_mAP", "d_mAP_hw95", "params",
                                              "latency_ms", "n"], raw)
    path = outdir / "table_tasks.png"
    save_table_figure(rows, head, path, title="UFO per task: single-task, all-in-one, supernet (largest), trimmed",
                      label=f"{_LABEL}, scale {agg.get('scale', '')}", width=10, fontsize=7.5, row_height=0.27)
    return path


def fig_tasks(agg: dict, tasks: list[str], path, scale: str = "") -> Path:
    """Left: test mAP per task and arm (mean ± std); right: paired Δ mAP to single-task (± 95 %)
    against the parameters of the deployed path relative to the single-task model."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    arms = [a for a in ARMS if a in agg["arms"]]
    w = 0.8 / max(1, len(arms))
    for j, a in enumerate(arms):
        v = np.array([arm_stat(agg, a, f"mAP_{t}")[:2] for t in tasks])
        a1.bar(np.arange(len(tasks)) + (j - (len(arms) - 1) / 2) * w, 100 * v[:, 0], w, yerr=100 * v[:, 1],
               capsize=2, color=_COLORS[a], label=a)
        if a == REF:
            continue
        for i, t in enumerate(tasks):
            d, h, _ = paired_delta(agg, a, REF, f"mAP_{t}")
            frac = arm_stat(agg, a, f"params_{t}")[0] / arm_stat(agg, REF, f"params_{t}")[0] + 0.012 * (j - 2)
            a2.errorbar(frac, 100 * d, yerr=100 * np.nan_to_num(h), fmt="os^D"[i % 4], color=_COLORS[a], capsize=3,
                        label=a if i == 0 else None)
            a2.annotate(t, (frac, 100 * d), fontsize=6, xytext=(4, 2), textcoords="offset points")
    a1.set_xticks(np.arange(len(tasks)), tasks)
    a1.set_ylabel("test mAP x100")
    a1.legend(fontsize=7)
    a1.set_title("retrieval on unseen identities", fontsize=9)
    a2.axhline(0, color="k", lw=0.8)
    a2.axvline(1, color="k", lw=0.5, ls=":")
    a2.set_xlabel("deployed path parameters / single-task model (arms nudged apart)")
    a2.set_ylabel("Δ mAP x100 vs single (paired, ± 95 %)")
    a2.legend(fontsize=7)
    a2.set_title("gain over single-task vs size (marker = task)", fontsize=9)
    save_figure(fig, path, f"{_LABEL}, scale {scale}")
    return Path(path)


def fig_trim_search(trimmed_run: dict, tasks: list[str], cap: float, path, scale: str = "") -> Path:
    """Seed 0's trimming search per task: every candidate's validation score against its
    parameters, the chosen path starred; the parameter cap dashed."""
    found = trimmed_run.get("meta", {}).get("found", {})
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.0 * len(tasks), 2.9), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        f = found.get(t)
        if not f:
            ax.set_title(f"{t}: no search", fontsize=8)
            continue
        h = f["history"]
        p = np.array([c["params"] for c in h]) / 1e3
        s = np.array([c["score"] for c in h])
        ax.scatter(p, 100 * s, s=9, c=np.arange(len(h)), cmap="viridis")
        best = int(np.argmax(s))
        ax.scatter([p[best]], [100 * s[best]], marker="*", s=90, c="C3", zorder=3)
        ax.set_title(f"{t}: {len(h)} candidates", fontsize=8)
        ax.set_xlabel("path params (k)", fontsize=7)
        m = trimmed_run.get("metrics", {})
        if m.get(f"params_frac_{t}"):
            ax.axvline(cap * m[f"params_{t}"] / m[f"params_frac_{t}"] / 1e3, color="k", ls="--", lw=0.8)
    axes[0][0].set_ylabel("val (R1 + mAP) / 2 x100", fontsize=7)
    fig.suptitle(f"trimming search on validation identities (seed 0; colour = order, star = chosen; "
                 f"cap {cap:.0%} of the largest path)", fontsize=8)
    save_figure(fig, path, f"{_LABEL}, scale {scale}")
    return Path(path)


def make_all(block: dict, agg: dict, outdir: Path, *, scale: str, trimmed_run: dict | None = None) -> list[Path]:
    tasks = list(block["tasks"])
    out = [table_tasks(agg, tasks, outdir), fig_tasks(agg, tasks, outdir / "fig_tasks.png", scale)]
    out.append(fig_trim_search(trimmed_run or {}, tasks, float(block["search"]["param_cap"]),
                               outdir / "fig_trim_search.png", scale))
    return out
