"""Entry points of the interface-phonon study (called by the Snakemake rules).

    python -m paperzoo.studies.interface_phonons.steps <step> --params P --scale S [options]

``P`` is the study's config block after the scale overlay, as JSON text (what the rules
pass) or a JSON file. Only the ``*_from_config``
functions below read it; everything else takes explicit keyword arguments.

Steps and outputs (all written atomically):

* ``elastic``   --out run-metrics.json --npz curves.npz --keff-csv --transmission-csv
                --physical-csv --conductance-csv            (arm ``elastic``, seed 0)
* ``localized`` --out run-metrics.json --table localized.csv --npz localized.npz
                                                            (arm ``localized``, seed 0)
* ``md``        --seed K --out run-metrics.json [--table md.csv]   (arm ``md``, seed K;
                resumable: a killed run continues from ``<out>.partial``)
* ``figures``   --metrics metrics.json --elastic-npz --localized-npz --outdir DIR
                (writes ``DIR/<fig>.png`` for every name in ``figures.FIGURES``)

Metric names are flat; temperatures enter them as tags: reduced T → ``T0p1`` (dot → p),
physical T → ``300K``.
"""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np

from paperzoo.engine.checkpoint import finish
from paperzoo.engine.cli import parse_step, study_parser
from paperzoo.engine.io import read_json, write_npz, write_text
from paperzoo.engine.metrics import run_meta, write_run_metrics
from paperzoo.engine.seeding import seed_everything

from . import elastic, localized, md, nemd_theory, scph
from .units import PhysicalInterface

STUDY = "interface_phonons"
MODEL_NOTE = "minimal model in the spirit of arXiv 2202.11037 (paper's model and parameters unknown)"


def tag(t: float, unit: str = "") -> str:
    """Metric-name tag of a temperature: 0.1 → 'T0p1' (reduced), 300 K → '300K'."""
    s = f"{float(t):g}".replace(".", "p").replace("-", "m").replace("+", "")
    return f"{s}K" if unit == "K" else f"T{s}"


# --- config → explicit keyword arguments -------------------------------------------------

def model_from_config(block: dict) -> dict:
    m = block["model"]
    return {k: float(m[k]) for k in ("m_left", "k_left", "m_right", "k_right", "k_int", "lam")}


def scph_from_config(block: dict) -> elastic.ScphSettings:
    s = block["scph"]
    return elastic.ScphSettings(mixing=float(s["mixing"]), tol=float(s["tol"]), max_iter=int(s["max_iter"]),
                                n_quad=int(s["n_quad"]), xi_cut_factor=float(s["xi_cut_factor"]),
                                n_per_segment=int(s["n_per_segment"]))


def elastic_from_config(block: dict) -> dict:
    e, p = block["elastic"], block["physical"]
    phys = PhysicalInterface(**{k: float(p[k]) for k in (
        "mass_left_amu", "spring_left_eV_per_A2", "mass_right_amu", "spring_right_eV_per_A2",
        "k_int_eV_per_A2", "lam_eV_per_A4")})
    return {"model": model_from_config(block), "settings": scph_from_config(block),
            "n_cells": int(e["n_cells"]), "temperatures": [float(t) for t in e["temperatures"]],
            "n_omega": int(e["n_omega"]),
            "keff_line_T": np.linspace(0.0, float(e["keff_line_T_max"]), int(e["keff_line_points"])),
            "physical": phys, "temperatures_K": [float(t) for t in p["temperatures_K"]],
            "line_temperatures_K": np.linspace(float(p["line_T_min_K"]), float(p["line_T_max_K"]),
                                               int(p["line_points"]))}


def localized_from_config(block: dict) -> dict:
    c = block["localized"]
    return {"model": model_from_config(block), "settings": scph_from_config(block),
            "m_a": float(c["m_a"]), "m_b": float(c["m_b"]), "onsite_a": float(c["onsite_a"]),
            "onsite_b": float(c["onsite_b"]), "temperatures": [float(t) for t in c["temperatures"]],
            "n_side": int(c["n_side"]), "ldos_eta": float(c["ldos_eta"]),
            "ldos_omega": np.linspace(0.0, float(c["ldos_omega_max"]), int(c["ldos_points"]))}


def md_from_config(block: dict) -> dict:
    c, m = block["md"], model_from_config(block)
    gl = float(np.sqrt(m["k_left"] / m["m_left"])) if c["gamma_left"] is None else float(c["gamma_left"])
    gr = float(np.sqrt(m["k_right"] / m["m_right"])) if c["gamma_right"] is None else float(c["gamma_right"])
    setup = md.NemdSetup(n_left=int(c["n_left"]), n_right=int(c["n_right"]), m_left=m["m_left"],
                         k_left=m["k_left"], m_right=m["m_right"], k_right=m["k_right"], k_int=m["k_int"],
                         gamma_left=gl, gamma_right=gr, dt=float(c["dt"]), n_replicas=int(c["n_replicas"]),
                         block_len=int(c["block_len"]), n_blocks=int(c["n_blocks"]),
                         n_equil_blocks=int(c["n_equil_blocks"]))
    return {"setup": setup, "lam": m["lam"], "temperatures": [float(t) for t in c["temperatures"]],
            "dt_rel": float(c["dT_rel"]), "n_panels": int(c["n_panels"]),
            "every_s": float(c["checkpoint_every_s"]), "line_points": int(c["line_points"])}


# --- helpers -------------------------------------------------------------------------------

def _write_csv(path, columns: dict) -> None:
    """CSV with one column per key (unit-bearing names), numbers in repr precision."""
    names = list(columns)
    cols = [np.atleast_1d(np.asarray(columns[k])) for k in names]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(names)
    for row in zip(*cols):
        w.writerow([repr(float(x)) if isinstance(x, (float, np.floating)) else x for x in row])
    write_text(path, buf.getvalue())


def _meta(t0: float, threads: int, **extra) -> dict:
    return run_meta(t0, threads, model=MODEL_NOTE, **extra)


# --- steps ---------------------------------------------------------------------------------

def run_elastic(block: dict, *, scale: str, out, npz, keff_csv, transmission_csv, physical_csv,
                conductance_csv, threads: int = 1) -> dict:
    """Harmonic vs quartic-SCPH transmission and conductance vs T, with analytic checks."""
    t0 = time.perf_counter()
    seed_everything(0, threads)
    kw = elastic_from_config(block)
    red = elastic.reduced_model(**kw["model"], n_cells=kw["n_cells"], temperatures=kw["temperatures"],
                                n_omega=kw["n_omega"], settings=kw["settings"])
    lines = elastic.keff_curves(**kw["model"], n_cells=kw["n_cells"], temperatures=kw["keff_line_T"],
                                settings=kw["settings"])
    phys = elastic.physical_model(kw["physical"], n_cells=kw["n_cells"], temperatures_K=kw["temperatures_K"],
                                  line_temperatures_K=kw["line_temperatures_K"], n_omega=kw["n_omega"],
                                  settings=kw["settings"])
    a = red["arrays"]
    metrics = dict(red["checks"])
    for i, t in enumerate(kw["temperatures"]):
        s = tag(t)
        metrics.update({f"keff_quantum_{s}": a["keff_quantum"][i], f"keff_classical_{s}": a["keff_classical"][i],
                        f"keff_closed_{s}": a["keff_closed"][i], f"keff_boltzmann_{s}": a["keff_boltzmann"][i],
                        f"Tavg_harmonic_{s}": a["tavg_harmonic"][i], f"Tavg_quartic_{s}": a["tavg_quartic"][i]})
    for i, t in enumerate(kw["temperatures_K"]):
        s = tag(t, "K")
        g_h, g_q = phys["G_harmonic_pW_per_K"][i], phys["G_quartic_pW_per_K"][i]
        t_h, t_q = phys["tavg_harmonic_phys"][i], phys["tavg_quartic_phys"][i]
        metrics.update({f"keff_eV_per_A2_{s}": phys["keff_eV_per_A2"][i], f"Tavg_harmonic_{s}": t_h,
                        f"Tavg_quartic_{s}": t_q, f"dTavg_rel_{s}": t_q / t_h - 1})
        if t > 0:  # the quantum Landauer conductance vanishes at T = 0 (no ratio there)
            metrics.update({f"G_harmonic_{s}": g_h, f"G_quartic_{s}": g_q, f"dG_rel_{s}": g_q / g_h - 1})
    # harmonic transmission through the SCPH code path with λ = 0, over all temperatures
    metrics["harmonic_T_spread"] = float(np.ptp(a["tavg_harmonic_scph_path"]))
    write_run_metrics(out, study=STUDY, scale=scale, arm="elastic", seed=0, metrics=metrics,
                      meta=_meta(t0, threads, units=phys["units"], reduced_physical_params=phys["reduced_params"]))
    cols = {"temperature": a["temperatures"], "keff_quantum": a["keff_quantum"],
            "keff_classical_scph": a["keff_classical"], "keff_closed_form": a["keff_closed"],
            "keff_boltzmann_hartree": a["keff_boltzmann"], "y2_quantum": a["y2_quantum"],
            "Tavg_harmonic": a["tavg_harmonic"], "Tavg_quartic": a["tavg_quartic"]}
    _write_csv(keff_csv, cols)
    _write_csv(transmission_csv, {"omega": a["omega"], "T_harmonic": a["trans_harmonic"],
                                  **{f"T_quartic_{tag(t)}": tr for t, tr in zip(kw["temperatures"], a["trans_quartic"])}})
    _write_csv(physical_csv, {"freq_THz": phys["freq_THz"], "T_harmonic": phys["trans_harmonic_phys"],
                              **{f"T_quartic_{tag(t, 'K')}": tr
                                 for t, tr in zip(kw["temperatures_K"], phys["trans_quartic_phys"])}})
    _write_csv(conductance_csv, {"temperature_K": phys["line_temperatures_K"],
                                 "keff_eV_per_A2": phys["line_keff_eV_per_A2"],
                                 "conductance_harmonic_pW_per_K": phys["line_G_harmonic_pW_per_K"],
                                 "conductance_quartic_pW_per_K": phys["line_G_quartic_pW_per_K"]})
    arrays = {k: v for k, v in {**a, **lines, **phys}.items() if not isinstance(v, dict)}
    write_npz(npz, arrays)
    return metrics


def run_localized(block: dict, *, scale: str, out, table, npz, threads: int = 1) -> dict:
    """Localized interface mode vs T (light interface atoms + quartic bond, quantum SCPH)."""
    t0 = time.perf_counter()
    seed_everything(0, threads)
    kw = localized_from_config(block)
    s = kw["settings"]

    def y2_of_t(t):
        return lambda c: scph.y2_quantum(c, t, xi_cut_factor=s.xi_cut_factor, n_quad=s.n_quad)

    res = localized.localization_vs_temperature(
        **kw["model"], m_a=kw["m_a"], m_b=kw["m_b"], onsite_a=kw["onsite_a"], onsite_b=kw["onsite_b"],
        temperatures=kw["temperatures"], n_side=kw["n_side"], ldos_omega=kw["ldos_omega"],
        ldos_eta=kw["ldos_eta"], y2_of_t=y2_of_t)
    metrics = {"n_localized_base": res["n_bound_base"], "n_localized": float(np.min(res["n_bound"])),
               "n_localized_harmonic": res["n_bound_harmonic"],
               "loc_freq_harmonic": res["omega_harmonic"],
               "check_finite_vs_bound": float(np.nanmax(res["finite_err"])),
               "check_ldos_sum_rule": float(np.nanmax(res["ldos_sum_err"]))}
    for i, t in enumerate(kw["temperatures"]):
        g = tag(t)
        metrics.update({f"keff_{g}": res["keff"][i], f"n_localized_{g}": res["n_bound"][i],
                        f"loc_freq_{g}": res["omega"][i], f"loc_weight_{g}": res["weight"][i],
                        f"loc_weight_b_{g}": res["weight_b"][i], f"loc_decay_left_{g}": res["decay_left"][i],
                        f"ipr_{g}": res["ipr"][i], f"pr_{g}": res["pr"][i]})
    # a missing localized mode at some T leaves NaN: drop those names (write_run_metrics wants finite)
    metrics = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
    write_run_metrics(out, study=STUDY, scale=scale, arm="localized", seed=0, metrics=metrics,
                      meta=_meta(t0, threads, variant="light interface atoms",
                                 m_a=kw["m_a"], m_b=kw["m_b"]))
    _write_csv(table, {"temperature": res["temperatures"], "keff": res["keff"], "n_localized": res["n_bound"],
                       "loc_omega": res["omega"], "loc_weight_ab": res["weight"], "loc_weight_a": res["weight_a"],
                       "loc_weight_b": res["weight_b"], "decay_left_sites": res["decay_left"],
                       "decay_right_sites": res["decay_right"], "ipr": res["ipr"], "participation_ratio": res["pr"]})
    write_npz(npz, {**res, "ldos_eta": kw["ldos_eta"]})
    return metrics


def run_md(block: dict, *, scale: str, seed: int, out, table=None, threads: int = 1,
           every_s: float | None = None, progress: bool = True) -> dict:
    """Harmonic and quartic NEMD at every configured T for one seed, with mean-field predictions."""
    t0 = time.perf_counter()
    seed_everything(seed, threads)
    kw = md_from_config(block)
    setup, lam, dtr = kw["setup"], kw["lam"], kw["dt_rel"]
    runs = []
    for t in kw["temperatures"]:
        th, tc = t * (1 + dtr / 2), t * (1 - dtr / 2)
        runs += [md.NemdRun(f"harmonic_{tag(t)}", 0.0, th, tc), md.NemdRun(f"quartic_{tag(t)}", lam, th, tc)]
    results = md.run_series(setup, runs, seed=seed, final=out, progress=progress,
                            every_s=kw["every_s"] if every_s is None else every_s)
    by_label = {r.label: r for r in results}
    metrics = {"check_ness_quadrature_err": nemd_theory.equilibrium_check(
        setup, temperature=kw["temperatures"][0], n_panels=kw["n_panels"])}
    rows = []
    for t in kw["temperatures"]:
        g = tag(t)
        pred = nemd_theory.predict(setup, lam=lam, t_hot=t * (1 + dtr / 2), t_cold=t * (1 - dtr / 2),
                                   n_panels=kw["n_panels"])
        h, q = by_label[f"harmonic_{g}"], by_label[f"quartic_{g}"]
        metrics.update({
            f"G_md_harmonic_{g}": h.g, f"G_md_harmonic_se_{g}": h.g_se,
            f"G_md_quartic_{g}": q.g, f"G_md_quartic_se_{g}": q.g_se,
            f"G_landauer_{g}": pred["g_landauer"], f"G_scph_{g}": pred["g_scph"],
            f"rel_dev_harmonic_{g}": h.g / pred["g_landauer"] - 1,
            f"rel_dev_quartic_{g}": q.g / pred["g_scph"] - 1,
            f"G_md_ratio_{g}": q.g / h.g, f"keff_scph_{g}": pred["keff"],
            f"y2_md_quartic_{g}": q.y2, f"y2_scph_{g}": pred["y2_scph"],
            f"y2_md_harmonic_{g}": h.y2, f"y2_harmonic_{g}": pred["y2_harmonic"]})
        a = setup.bond
        for r, g_pred, y2_pred in ((h, pred["g_landauer"], pred["y2_harmonic"]), (q, pred["g_scph"], pred["y2_scph"])):
            rows.append({"label": r.label, "temperature": t, "T_hot": t * (1 + dtr / 2), "T_cold": t * (1 - dtr / 2),
                         "G_md": r.g, "G_md_se": r.g_se, "G_pred": g_pred, "y2_md": r.y2, "y2_pred": y2_pred,
                         "T_kin_a": r.t_profile[a], "T_kin_b": r.t_profile[a + 1]})
    # Harmonic classical dynamics is linear, so u ∝ sqrt(T) and J/ΔT has the same distribution
    # at every T: the harmonic runs are independent estimates of one number; pool them
    # (inverse-variance weights) for the harmonic-vs-Landauer check.
    hs = [by_label[f"harmonic_{tag(t)}"] for t in kw["temperatures"]]
    w = np.array([1.0 / r.g_se**2 for r in hs])
    g_pool = float(np.sum(w * [r.g for r in hs]) / w.sum())
    metrics.update({"G_md_harmonic_pooled": g_pool, "G_md_harmonic_pooled_se": float(1.0 / np.sqrt(w.sum())),
                    "rel_dev_harmonic_pooled": g_pool / metrics[f"G_landauer_{tag(kw['temperatures'][0])}"] - 1})
    write_run_metrics(out, study=STUDY, scale=scale, arm="md", seed=seed, metrics=metrics,
                      meta=_meta(t0, threads, dT_rel=dtr, setup=setup.__dict__))
    if table is not None:
        _write_csv(table, {k: [r[k] for r in rows] for k in rows[0]})
    finish(out)
    return metrics


def _md_points(metrics: dict, temperatures: list[float]) -> dict:
    arm = metrics.get("arms", {}).get("md", {})
    names = [tag(t) for t in temperatures]
    if not all(f"G_md_quartic_{g}" in arm for g in names):
        return {"T": None}
    get = lambda key, field: np.array([arm[f"{key}_{g}"][field] for g in names])  # noqa: E731
    return {"T": np.asarray(temperatures), "G_harmonic": get("G_md_harmonic", "mean"),
            "G_harmonic_err": get("G_md_harmonic", "std"), "G_quartic": get("G_md_quartic", "mean"),
            "G_quartic_err": get("G_md_quartic", "std")}


def run_figures(block: dict, *, scale: str, metrics, elastic_npz, localized_npz, outdir) -> list[Path]:
    """All figures into ``outdir`` (``<name>.png`` for each name in ``figures.FIGURES``)."""
    from . import figures  # matplotlib only where figures are drawn (import costs ~1 s)

    outdir = Path(outdir)
    el = dict(np.load(elastic_npz))
    loc = dict(np.load(localized_npz))
    kw = md_from_config(block)
    t = np.asarray(kw["temperatures"])
    grid = np.geomspace(t.min() / 1.5, t.max() * 1.5, kw["line_points"])
    line = nemd_theory.prediction_lines(kw["setup"], lam=kw["lam"], temperatures=grid, dt_rel=kw["dt_rel"],
                                        n_panels=kw["n_panels"])
    points = _md_points(read_json(metrics), kw["temperatures"])
    figures.fig_transmission_vs_T(el, outdir / "fig_transmission_vs_T.png")
    figures.fig_keff_vs_T(el, outdir / "fig_keff_vs_T.png")
    figures.fig_conductance_vs_T(line, points, outdir / "fig_conductance_vs_T.png")
    figures.fig_conductance_physical_vs_T(el, outdir / "fig_conductance_physical_vs_T.png")
    figures.fig_localization_vs_T(loc, outdir / "fig_localization_vs_T.png")
    return [outdir / f"{name}.png" for name in figures.FIGURES]


def main(argv: list[str] | None = None) -> None:
    ap = study_parser(__doc__, ("elastic", "localized", "md", "figures"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="run metrics JSON (elastic, localized, md)")
    ap.add_argument("--npz", type=Path)
    ap.add_argument("--table", type=Path)
    ap.add_argument("--keff-csv", type=Path)
    ap.add_argument("--transmission-csv", type=Path)
    ap.add_argument("--physical-csv", type=Path)
    ap.add_argument("--conductance-csv", type=Path)
    ap.add_argument("--metrics", type=Path, help="aggregated metrics.json (figures)")
    ap.add_argument("--elastic-npz", type=Path)
    ap.add_argument("--localized-npz", type=Path)
    ap.add_argument("--outdir", type=Path)
    need = {"elastic": ["out", "npz", "keff_csv", "transmission_csv", "physical_csv", "conductance_csv"],
            "localized": ["out", "table", "npz"], "md": ["out"],
            "figures": ["metrics", "elastic_npz", "localized_npz", "outdir"]}
    args, block = parse_step(ap, argv, need)
    if args.step == "elastic":
        run_elastic(block, scale=args.scale, out=args.out, npz=args.npz, keff_csv=args.keff_csv,
                    transmission_csv=args.transmission_csv, physical_csv=args.physical_csv,
                    conductance_csv=args.conductance_csv, threads=args.threads)
    elif args.step == "localized":
        run_localized(block, scale=args.scale, out=args.out, table=args.table, npz=args.npz, threads=args.threads)
    elif args.step == "md":
        run_md(block, scale=args.scale, seed=args.seed, out=args.out, table=args.table, threads=args.threads)
    else:
        run_figures(block, scale=args.scale, metrics=args.metrics, elastic_npz=args.elastic_npz,
                    localized_npz=args.localized_npz, outdir=args.outdir)


if __name__ == "__main__":
    main()
