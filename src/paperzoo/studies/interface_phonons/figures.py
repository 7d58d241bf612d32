"""Figures of the interface-phonon study, one function per figure (Agg backend, atomic PNG).

The paper's own figure numbers are unknown (only its abstract could be read), so the figures are named after what
they show. Each function takes plain arrays/dicts (from the step outputs) and a PNG path.
"""
from __future__ import annotations

import os

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from paperzoo.engine.plots import save_figure  # noqa: E402

FIGURES = ("fig_transmission_vs_T", "fig_keff_vs_T", "fig_conductance_vs_T",
           "fig_conductance_physical_vs_T", "fig_localization_vs_T")
_LABEL = "minimal model in the spirit of arXiv 2202.11037"


def _save(fig, path: str | os.PathLike) -> None:
    save_figure(fig, path, _LABEL, dpi=130)


def _colors(n: int):
    return plt.cm.viridis(np.linspace(0.1, 0.85, max(n, 1)))


def fig_transmission_vs_T(el: dict, path: str | os.PathLike) -> None:
    """T(ω) harmonic (T-independent) and quartic-SCPH at each T; reduced (left) and physical (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    ax.plot(el["omega"], el["trans_harmonic"], "k--", lw=1.5, label="harmonic (all T)")
    for t, tr, c in zip(el["temperatures"], el["trans_quartic"], _colors(len(el["temperatures"]))):
        ax.plot(el["omega"], tr, color=c, label=f"quartic SCPH, T = {t:g}")
    ax.set(xlabel="ω (reduced, ω0 = sqrt(k_L/m_L))", ylabel="transmission T(ω)", yscale="log",
           title="reduced model", ylim=(1e-4, 1.2))
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(el["freq_THz"], el["trans_harmonic_phys"], "k--", lw=1.5, label="harmonic (all T)")
    for t, tr, c in zip(el["temperatures_K"], el["trans_quartic_phys"], _colors(len(el["temperatures_K"]))):
        ax.plot(el["freq_THz"], tr, color=c, label=f"quartic SCPH, {t:g} K")
    ax.set(xlabel="frequency (THz)", ylabel="transmission T(ω)", yscale="log",
           title="illustrative physical interface", ylim=(1e-6, 1.2))
    ax.legend(fontsize=7)
    _save(fig, path)


def fig_keff_vs_T(el: dict, path: str | os.PathLike) -> None:
    """k_eff(T): quantum SCPH, classical closed form (Eq. CF), exact-Boltzmann Hartree."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(el["keff_T"], el["keff_quantum_line"], "C0-", label="quantum SCPH (zero point incl.)")
    ax.plot(el["keff_T"], el["keff_closed_line"], "C1--", label="classical SCPH (closed form)")
    ax.plot(el["keff_T"], el["keff_boltzmann_line"], "C2:", label="k_I + 3λ⟨y²⟩ exact Boltzmann")
    ax.plot(el["temperatures"], el["keff_quantum"], "C0o")
    ax.plot(el["temperatures"], el["keff_classical"], "C1s", mfc="none", label="classical SCPH from GF ⟨y²⟩")
    ax.set(xlabel="T (reduced)", ylabel="k_eff (reduced)", title="interface spring renormalisation")
    ax.legend(fontsize=7)
    _save(fig, path)


def fig_conductance_vs_T(line: dict, md_points: dict, path: str | os.PathLike) -> None:
    """NEMD conductance vs mean T: Landauer (harmonic) and SCPH-Landauer lines, MD points.

    ``md_points``: {"T": (n,), "G_harmonic", "G_harmonic_err", "G_quartic", "G_quartic_err"}
    (error bars: sample std over seeds).
    """
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(line["md_line_T"], line["md_line_G_landauer"], "k--", label="harmonic Landauer")
    ax.plot(line["md_line_T"], line["md_line_G_scph"], "C3-", label="quartic: SCPH-Landauer (NESS)")
    if md_points.get("T") is not None and len(md_points["T"]):
        ax.errorbar(md_points["T"], md_points["G_harmonic"], yerr=md_points["G_harmonic_err"], fmt="ks",
                    mfc="none", capsize=3, label="NEMD, harmonic")
        ax.errorbar(md_points["T"], md_points["G_quartic"], yerr=md_points["G_quartic_err"], fmt="C3o",
                    capsize=3, label="NEMD, full quartic bond")
    ax.set(xlabel=f"mean bath temperature T (reduced; ΔT = {float(line['dt_rel']):g}·T)",
           ylabel="G = J/ΔT (k_B ω0)", xscale="log",
           title="classical NEMD vs mean-field elastic theory")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # log axis: label decades only
    ax.legend(fontsize=7)
    _save(fig, path)


def fig_conductance_physical_vs_T(el: dict, path: str | os.PathLike) -> None:
    """Quantum Landauer conductance (pW/K) of the physical interface, harmonic vs quartic-SCPH."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    t = el["line_temperatures_K"]
    ax.plot(t, el["line_G_harmonic_pW_per_K"], "k--", label="harmonic")
    ax.plot(t, el["line_G_quartic_pW_per_K"], "C3-", label="quartic (quantum SCPH)")
    ax.plot(el["temperatures_K"], el["G_quartic_pW_per_K"], "C3o")
    ax.plot(el["temperatures_K"], el["G_harmonic_pW_per_K"], "ks", mfc="none")
    ax.set(xlabel="temperature (K)", ylabel="conductance per chain (pW/K)",
           title="illustrative physical interface")
    ax2 = ax.twinx()
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = el["line_G_quartic_pW_per_K"] / el["line_G_harmonic_pW_per_K"] - 1
    ax2.plot(t, 100 * rel, "C0:", label="relative change (%)")
    ax2.set_ylabel("quartic − harmonic (%)", color="C0")
    ax.legend(fontsize=7, loc="upper left")
    _save(fig, path)


def fig_localization_vs_T(loc: dict, path: str | os.PathLike) -> None:
    """Interface LDOS (out-of-band peak) and the localized mode's ω, weight, IPR vs T."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    for t, rho, c in zip(loc["temperatures"], loc["ldos_a"], _colors(len(loc["temperatures"]))):
        ax.plot(loc["ldos_omega"], rho, color=c, label=f"T = {t:g}")
    ax.axvline(loc["band_top"], color="0.5", ls=":", label="lead band top")
    ax.set(xlabel="ω (reduced)", ylabel="LDOS on interface atom a", yscale="log", ylim=(1e-3, None),
           title=f"interface LDOS (η = {loc['ldos_eta']:g})")
    ax.legend(fontsize=7)
    ax = axes[1]
    t = loc["temperatures"]
    ax.plot(t, loc["omega"], "C0o-", label="ω_loc (quartic SCPH)")
    ax.axhline(loc["omega_harmonic"], color="C0", ls="--", lw=1, label="ω_loc harmonic (λ = 0)")
    ax.set(xlabel="T (reduced)", ylabel="localized-mode frequency (reduced)", title="localized interface mode")
    ax2 = ax.twinx()
    ax2.plot(t, loc["weight"], "C3s-", label="weight on a + b")
    ax2.plot(t, loc["ipr"], "C2^-", label="IPR (finite device)")
    ax2.set_ylabel("weight / IPR")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="center right")
    _save(fig, path)
