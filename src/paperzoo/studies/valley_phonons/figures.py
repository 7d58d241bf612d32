"""Figures of the valley-phonon study (one function per figure, named as the file).

* ``fig_bands_valley``: phonon bands of graphene and hBN along Γ–M–K–Γ (cm⁻¹), with the
  twofold crossings at K marked (the paper's "not all hexagonal candidates" contrast).
* ``fig_berry_vs_radius``: single-band Berry phase |φ|/π vs loop radius r/|K| at K and K′
  for both materials; hollow markers are loops that lost the band's identity (not used).
  The modulus is drawn because the sign of an exactly quantized π is a branch choice of the
  logarithm (it flips between radii in graphene); the signed values are in the Berry CSV,
  and φ(K′) = −φ(K) there.
* ``fig_layergroup_scan``: the 80 layer groups as a grid, host groups highlighted, with the
  number of valley LWPs found at their K point.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from paperzoo.engine.plots import save_figure  # noqa: E402

from .phonons import THZ_TO_CM1  # noqa: E402

FIGURES = ("fig_bands_valley", "fig_berry_vs_radius", "fig_layergroup_scan")
LABELS = {"G": "Γ", "M": "M", "K": "K"}
MARKERS = {"K": "o", "Kp": "s"}


def _save(fig, path) -> None:
    save_figure(fig, path, "valley linear Weyl phonons (arXiv 2302.01054) reproduction", dpi=150)


def fig_bands_valley(bands: list[dict], path) -> None:
    """Bands (cm⁻¹) of each material; circles at the exact twofold degeneracies at K."""
    fig, axes = plt.subplots(1, len(bands), figsize=(4.2 * len(bands), 4.2), sharey=True)
    for ax, b in zip(np.atleast_1d(axes), bands):
        d, f = b["distance_inv_A"], b["freq_THz"] * THZ_TO_CM1
        ax.plot(d, f, color="0.2", lw=1.0)
        for x in b["label_distance_inv_A"]:
            ax.axvline(x, color="0.8", lw=0.6, zorder=0)
        ax.set_xticks(b["label_distance_inv_A"], [LABELS.get(str(s), str(s)) for s in b["labels"]])
        k_x = b["label_distance_inv_A"][2]  # Γ–M–K–Γ: K is the third label
        pairs = b["pairs_K"].reshape(-1, 2)
        for lo, _ in pairs:
            ax.plot(k_x, b["freq_K_THz"][lo] * THZ_TO_CM1, "o", ms=9, mfc="none", mec="tab:red", mew=1.6)
        title = f"{str(b['material'])}  ({str(b['lg_symbol'])}, LG {int(b['lg_number'])})"
        ax.set_title(f"{title}\n{len(pairs)} twofold crossing(s) at K", fontsize=10)
        ax.set_xlim(d[0], d[-1])
    np.atleast_1d(axes)[0].set_ylabel("frequency (cm$^{-1}$)")
    _save(fig, path)


def fig_berry_vs_radius(berry: list[list[dict]], path) -> None:
    """|φ|/π of each computed band vs r/|K| at K (circles) and K′ (squares), one panel per material."""
    fig, axes = plt.subplots(1, len(berry), figsize=(4.6 * len(berry), 3.8), sharey=True)
    for ax, rows in zip(np.atleast_1d(axes), berry):
        bands = sorted({int(r["band"]) for r in rows})
        colors = plt.cm.tab10(np.arange(len(bands)))
        for color, band in zip(colors, bands):
            for valley, marker in MARKERS.items():
                sel = [r for r in rows if int(r["band"]) == band and r["valley"] == valley]
                rad = np.array([float(r["radius_over_K"]) for r in sel])
                phi = np.array([float(r["abs_phi_over_pi"]) for r in sel])
                ok = np.array([r["valid"] == "1" for r in sel])
                ax.plot(rad, phi, "-", color=color, lw=0.8, alpha=0.5)
                ax.plot(rad[ok], phi[ok], marker, color=color, ms=5 if valley == "K" else 8, alpha=0.8,
                        label=f"band {band}, {'K′' if valley == 'Kp' else 'K'}")
                ax.plot(rad[~ok], phi[~ok], marker, mfc="none", mec=color, ms=5)
        for y in (0, 1):
            ax.axhline(y, color="0.8", lw=0.6, zorder=0)
        ax.set_xscale("log")
        ax.set_xlabel("loop radius r / |K|")
        ax.set_title(rows[0]["material"] if rows else "", fontsize=10)
        ax.set_ylim(-0.05, 1.1)
        ax.legend(fontsize=6, ncol=2, loc="center left")
    np.atleast_1d(axes)[0].set_ylabel("single-band Berry phase |φ| / π")
    _save(fig, path)


def fig_layergroup_scan(scan: list[dict], path) -> None:
    """Grid of the scanned layer groups (10 per row); hosts of valley LWPs filled."""
    n_cols = 10
    n_rows = int(np.ceil(max(int(r["lg_number"]) for r in scan) / n_cols))
    fig, ax = plt.subplots(figsize=(11, 1.05 * n_rows + 0.8))
    for r in scan:
        n = int(r["lg_number"])
        i, j = (n - 1) // n_cols, (n - 1) % n_cols
        host = r["host"] == "True"
        confirmed = r["lg_confirmed"] == "True"
        face = "tab:red" if host else ("0.93" if confirmed else "khaki")
        ax.add_patch(plt.Rectangle((j, n_rows - 1 - i), 0.95, 0.95, color=face))
        text_color = "white" if host else "0.2"
        ax.text(j + 0.475, n_rows - 1 - i + 0.62, f"{n}", ha="center", va="center", fontsize=9,
                color=text_color, weight="bold")
        ax.text(j + 0.475, n_rows - 1 - i + 0.32, r["lg_symbol"].replace("_", ""), ha="center", va="center",
                fontsize=6.5, color=text_color)
        if r.get("candidate_material"):
            ax.text(j + 0.475, n_rows - 1 - i + 0.1, r["candidate_material"], ha="center", va="center",
                    fontsize=5.5, color=text_color, style="italic")
    n_hosts = sum(r["host"] == "True" for r in scan)
    n_conf = sum(r["lg_confirmed"] == "True" for r in scan)
    ax.set_xlim(0, n_cols)
    ax.set_ylim(0, n_rows)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"valley LWP hosts (red): {n_hosts} of {len(scan)} layer groups scanned "
                 f"(spglib confirmed {n_conf}/{len(scan)})", fontsize=10)
    _save(fig, Path(path))
