"""LAE figures from the aggregated metrics (mean ± std over seeds); one function per figure.

* ``fig_accuracy_per_task`` — A_t vs task per benchmark × PET (accuracy-vs-task curves): Seq-PET,
  LAE online/offline/ensemble, linear probe; joint as a horizontal line.
* ``table_main`` — the layout of the paper's Table 1: A_T and Ā per PET × method (%).
* ``fig_lae_heatmap`` — LAE (ensemble) accuracy matrix acc[t, j] per benchmark, Adapter.
* ``fig_prefix_calibration`` — Prefix with vs without compensation: paired loss and accuracy gains.
* ``fig_paired_gains`` — per PET, the within-order gains that the claims test (LAE − Seq-PET,
  freeze alone, ensemble − online, offline − online on old tasks, online − offline on the new
  task): one dot per class order, mean and 95 % interval.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from paperzoo.engine.plots import save_figure  # noqa: E402

_LABEL = "LAE (arXiv 2303.10070) reproduction"
FIGURES = ("fig_accuracy_per_task", "table_main", "fig_lae_heatmap", "fig_prefix_calibration", "fig_paired_gains")
GAINS = (("gain_lae_vs_seq", "LAE\n− Seq"), ("gain_freeze", "freeze\nonly"),
         ("gain_ens_vs_online", "ens.\n− online"), ("gain_offline_old", "old tasks:\noff − on"),
         ("gain_online_new", "new task:\non − off"))
PETS = ("adapter", "lora", "prefix")


def _get(agg: dict, arm: str, metric: str) -> tuple[float, float]:
    m = agg["arms"].get(arm, {}).get(metric)
    return (np.nan, np.nan) if m is None else (100 * m["mean"], 100 * m["std"])


def _curve(agg, arm, prefix, T):
    ms = [_get(agg, arm, f"{prefix}acc_stage{t}") for t in range(1, T + 1)]
    return np.array([m for m, _ in ms]), np.array([s for _, s in ms])


def fig_accuracy_per_task(agg: dict, block: dict, out: Path, scale: str) -> None:
    benches = list(block["benchmarks"])
    fig, axes = plt.subplots(len(benches), len(PETS), figsize=(4 * len(PETS), 3.2 * len(benches)), squeeze=False)
    for r, b in enumerate(benches):
        T = int(block["bench"][b]["n_tasks"])
        x = np.arange(1, T + 1)
        for c, pet in enumerate(PETS):
            ax = axes[r, c]
            for arm, prefix, label, style in ((f"{b}_seq_{pet}", "", "Seq-PET", "k--"),
                                              (f"{b}_lae_{pet}", "online_", "LAE online", "C0:"),
                                              (f"{b}_lae_{pet}", "offline_", "LAE offline", "C2:"),
                                              (f"{b}_lae_{pet}", "", "LAE ensemble", "C3-"),
                                              (f"{b}_linear", "", "linear probe", "C7-.")):
                m, s = _curve(agg, arm, prefix, T)
                ax.plot(x, m, style, marker="o", ms=3, label=label)
                ax.fill_between(x, m - s, m + s, color=style[:2] if style[0] == "C" else "k", alpha=0.12)
            for arm, label, style in ((f"{b}_joint_{pet}", f"joint {pet} (upper bound)", "-"),
                                      (f"{b}_joint_adapter", "joint adapter (upper bound)", "-"),
                                      (f"{b}_joint_linear", "joint linear head", ":")):
                j, _ = _get(agg, arm, "acc_last")
                if not np.isnan(j):
                    ax.axhline(j, color="C1", lw=1, ls=style, label=label)
                    if arm.endswith(pet) or arm.endswith("adapter"):
                        break
            ax.set(title=f"{b} · {pet}", xlabel="task t", ylabel="A_t (%)", ylim=(0, 100))
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"LAE: accuracy on all seen classes after each task (mean ± std over seeds, {scale})")
    save_figure(fig, out, _LABEL, dpi=110)


def table_main(agg: dict, block: dict, out: Path, scale: str) -> None:
    rows, benches = [], list(block["benchmarks"])
    methods = (("Seq-PET", "seq_{p}", ""), ("LAE online", "lae_{p}", "online_"), ("LAE offline", "lae_{p}", "offline_"),
               ("LAE ensemble", "lae_{p}", ""), ("Joint (upper)", "joint_{p}", ""))
    cell = lambda a, m: "—" if np.isnan(_get(agg, a, m)[0]) else "{:.1f}±{:.1f}".format(*_get(agg, a, m))  # noqa: E731
    rows.append(["linear probe", "—"] + [x for b in benches for x in (cell(f"{b}_linear", "acc_last"),
                                                                    cell(f"{b}_linear", "acc_avg"))])
    rows.append(["joint linear head", "—"] + [x for b in benches for x in (cell(f"{b}_joint_linear", "acc_last"), "—")])
    for pet in PETS:
        for name, arm, pre in methods:
            r = [name, pet]
            for b in benches:
                a = f"{b}_{arm.format(p=pet)}"
                r += [cell(a, f"{pre}acc_last"), cell(a, f"{pre}acc_avg")]
            rows.append(r)
    cols = ["method", "PET"] + [f"{b} {k}" for b in benches for k in ("A_T (%)", "Ā (%)")]
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(cols), 0.32 * len(rows) + 1))
    ax.axis("off")
    t = ax.table(cellText=rows, colLabels=cols, loc="center", cellLoc="center")
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    ax.set_title(f"LAE main table layout (mean ± std over seeds, {scale})")
    save_figure(fig, out, _LABEL, dpi=110)


def fig_lae_heatmap(agg: dict, block: dict, out: Path, scale: str, pet: str = "adapter") -> None:
    benches = list(block["benchmarks"])
    fig, axes = plt.subplots(1, len(benches), figsize=(4.5 * len(benches), 4), squeeze=False)
    for ax, b in zip(axes[0], benches):
        T = int(block["bench"][b]["n_tasks"])
        mat = np.full((T, T), np.nan)
        for t in range(T):
            for j in range(t + 1):
                mat[t, j] = _get(agg, f"{b}_lae_{pet}", f"acc_t{t + 1}_task{j + 1}")[0]
        im = ax.imshow(mat, vmin=0, vmax=100, cmap="viridis")
        ax.set(title=f"{b}: LAE ({pet}) ensemble", xlabel="task j (test)", ylabel="after task t",
               xticks=range(T), xticklabels=range(1, T + 1), yticks=range(T), yticklabels=range(1, T + 1))
        fig.colorbar(im, ax=ax, label="accuracy (%)")
    fig.suptitle(f"Per-task accuracy acc[t, j] (mean over seeds, {scale})")
    save_figure(fig, out, _LABEL, dpi=110)


def fig_prefix_calibration(agg: dict, block: dict, out: Path, scale: str) -> None:
    """Paired gains of the compensation (per seed: same init, head and batches with and without)."""
    benches = list(block["benchmarks"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, (metric, label, unit) in zip(axes, (("loss_auc_gain", "mean train CE: without − with", 0.01),
                                                ("acc_gain", "test accuracy: with − without (pts)", 1.0))):
        vals = [_get(agg, f"{b}_calib", metric) for b in benches]       # _get returns x100
        ax.bar(range(len(benches)), [v[0] * unit for v in vals], 0.5, yerr=[v[1] * unit for v in vals],
               color="C0", capsize=4)
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xticks=range(len(benches)), xticklabels=benches, title=label)
    c = block["calib"]
    fig.suptitle(f"Prefix calibration: {c['steps']} prefix-only steps after {c['warmup_steps']} head-only steps, "
                 f"all classes (> 0: calibration adapts faster; mean ± std over seeds, {scale})", fontsize=9)
    save_figure(fig, out, _LABEL, dpi=110)


def fig_paired_gains(agg: dict, block: dict, out: Path, scale: str) -> None:
    """Within-order gains of each LAE run (pts): a dot per class order, mean ± 95 % Student interval."""
    from scipy import stats

    benches = list(block["benchmarks"])
    fig, axes = plt.subplots(len(benches), len(PETS), figsize=(4.2 * len(PETS), 3.4 * len(benches)),
                             squeeze=False, sharey=True)
    for r, b in enumerate(benches):
        for c, pet in enumerate(PETS):
            ax = axes[r, c]
            m = agg["arms"].get(f"{b}_lae_{pet}", {})
            for i, (key, _) in enumerate(GAINS):
                if key not in m:
                    continue
                v = 100 * np.array(list(m[key]["by_seed"].values()))
                ax.plot(np.full(v.size, i) + np.linspace(-0.12, 0.12, v.size), v, "o", color="C0", ms=3, alpha=0.6)
                h = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else 0.0
                ax.errorbar(i + 0.3, v.mean(), yerr=h, fmt="s", color="C3", capsize=4)
            ax.axhline(0, color="k", lw=0.8)
            ax.set_xticks(range(len(GAINS)), [label for _, label in GAINS], fontsize=7)
            ax.set(title=f"{b} · {pet}", ylabel="gain (pts)")
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"LAE: paired gains per class order (dots) with mean and 95 % interval (squares), {scale}")
    save_figure(fig, out, _LABEL, dpi=110)


def draw_all(agg: dict, block: dict, outdir: Path, scale: str) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in FIGURES:
        globals()[name](agg, block, outdir / f"{name}.png", scale)
        paths.append(outdir / f"{name}.png")
    return paths
