"""Shared figure plumbing: read one aggregated statistic; save a labelled PNG atomically.

Matplotlib (Agg) is imported by the studies' ``figures`` modules, not here, so that this
module costs nothing to import.
"""
from __future__ import annotations

import os

import numpy as np

from .io import atomic_path


def arm_stat(agg: dict, arm: str, name: str) -> tuple[float, float, int]:
    """``(mean, std, n)`` of metric ``name`` of ``arm`` in ``engine.metrics.aggregate`` output;
    ``(nan, 0, 0)`` when the arm or metric is absent (a panel then leaves it out)."""
    m = agg["arms"].get(arm, {}).get(name)
    return (np.nan, 0.0, 0) if m is None else (float(m["mean"]), float(m["std"]), int(m["n"]))


def paired_delta(agg: dict, arm: str, ref: str, name: str = "AP") -> tuple[float, float, int]:
    """Mean paired difference ``arm - ref`` of metric ``name`` over their common seeds and
    its 95 % half-width (Student t, n - 1 df); ``(nan, nan, 0)`` if unavailable."""
    from scipy import stats

    a = agg["arms"].get(arm, {}).get(name, {}).get("by_seed") or {}
    b = agg["arms"].get(ref, {}).get(name, {}).get("by_seed") or {}
    d = np.array([a[k] - b[k] for k in sorted(set(a) & set(b))], float)
    if len(d) == 0:
        return np.nan, np.nan, 0
    h = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else np.nan
    return float(d.mean()), h, len(d)


def stat_text(v: tuple[float, float, int], scale: float = 100.0, digits: int = 1, missing: str = "n/a") -> str:
    """An ``arm_stat`` triple as table text: ``mean ± std`` scaled by ``scale`` (the mean alone
    when n == 1, ``missing`` when absent)."""
    m, s, n = v
    if not np.isfinite(m):
        return missing
    return f"{scale * m:.{digits}f} ± {scale * s:.{digits}f}" if n > 1 else f"{scale * m:.{digits}f}"


def delta_text(agg: dict, arm: str, ref: str, name: str = "AP", scale: float = 100.0,
               digits: int = 1) -> tuple[str, float, float]:
    """(text, d, h) of the paired difference ``arm - ref`` (:func:`paired_delta`): ``+d ± h``
    scaled, ``—`` for the reference itself, ``n/a`` when the arms share no seed."""
    if arm == ref:
        return "—", np.nan, np.nan
    d, h, _ = paired_delta(agg, arm, ref, name)
    if not np.isfinite(d):
        return "n/a", d, h
    txt = f"{scale * d:+.{digits}f}" + (f" ± {scale * h:.{digits}f}" if np.isfinite(h) else "")
    return txt, d, h


def write_md_csv(outdir, stem: str, md_lines: list[str], csv_header: list[str], csv_rows: list[list]) -> None:
    """Write ``<stem>.md`` (the lines, newline-joined) and ``<stem>.csv`` (header + rows) in
    ``outdir``, each atomically: the two text forms of a study's table figure."""
    import csv
    from pathlib import Path

    outdir = Path(outdir)
    with atomic_path(outdir / f"{stem}.md") as tmp:
        Path(tmp).write_text("\n".join(md_lines) + "\n")
    with atomic_path(outdir / f"{stem}.csv") as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(csv_header)
            w.writerows(csv_rows)


def save_table_figure(rows: list[list[str]], head: list[str], path, *, title: str, label: str, width: float = 12,
                      fontsize: float = 7.5, row_height: float = 0.32) -> None:
    """A table as a PNG (the picture of a study's ``table_*.md``): one row per arm, left-aligned
    cells, ``title`` above, written through :func:`save_figure`."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, row_height * (len(rows) + 1) + 0.8))
    ax.axis("off")
    t = ax.table(cellText=rows, colLabels=head, loc="center", cellLoc="left")
    t.auto_set_font_size(False)
    t.set_fontsize(fontsize)
    ax.set_title(title, fontsize=9)
    save_figure(fig, path, label)


def save_figure(fig, path: str | os.PathLike, label: str, dpi: int = 130, rect=None) -> None:
    """Stamp ``label`` in the corner, tighten, write ``path`` atomically and close ``fig``."""
    import matplotlib.pyplot as plt

    fig.text(0.995, 0.005, label, ha="right", va="bottom", fontsize=6, color="0.4")
    fig.tight_layout(rect=rect)  # rect (l, b, r, t): room for a figure-level legend
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
