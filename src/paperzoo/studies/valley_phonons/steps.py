"""Entry points of the valley-phonon study (called by the Snakemake rules).

    python -m paperzoo.studies.valley_phonons.steps <step> --params P --scale S [options]

``P`` is the study's config block after the scale overlay, as JSON text (what the rules
pass) or a JSON file. Only the ``*_from_config`` functions read it; everything else takes
explicit keyword arguments.

Steps and outputs (all written atomically; [..] = optional):

* ``material`` --material NAME --out runs/NAME/seed0/metrics.json
               --phonopy-params runs/NAME/seed0/phonopy_params.yaml
               --bands-npz runs/NAME/seed0/bands.npz --berry-csv tables/berry_NAME.csv
               [--valley-json runs/NAME/seed0/valley.json]        (arm NAME, seed 0)
* ``lgscan``   --out runs/lgscan/seed0/metrics.json --table tables/layergroup_scan.csv
               [--hosts tables/host_layergroups.csv] [--materials M1.json M2.json ...]
                                                                  (arm ``lgscan``, seed 0)
               ``--materials``: the material run-metrics files; they fill the per-LG
               candidate slot (only materials computed here ever fill it).
* ``figures``  --bands-npz A.npz B.npz --berry-csv A.csv B.csv --scan-csv tables/layergroup_scan.csv
               --outdir figures/   (writes ``<name>.png`` for every name in ``figures.FIGURES``)
"""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np

from paperzoo.engine.cli import parse_step, study_parser
from paperzoo.engine.io import atomic_path, read_json, write_json, write_npz, write_text
from paperzoo.engine.metrics import run_meta, write_run_metrics
from paperzoo.engine.seeding import seed_everything

from . import layergroups, lgscan, materials
from .potentials import SpringLaw

STUDY = "valley_phonons"
MODEL_NOTE = ("DFT-free: Tersoff (typed from Lindsay & Broido 2010; Sevik 2011 / Kinaci 2012 B-N set, "
              "homonuclear B-B/N-N triplets inert) for graphene/hBN; generic bond springs for the 80-LG scan")


# --- config → explicit keyword arguments -------------------------------------------------

def material_from_config(block: dict, name: str) -> tuple[materials.MaterialSpec, materials.MaterialSettings]:
    if name not in block["materials"]:
        raise KeyError(f"material {name!r} not in config (have: {', '.join(block['materials'])})")
    m, st, ph, v = block["materials"][name], block["structure"], block["phonons"], block["valley"]
    spec = materials.MaterialSpec(name=name, formula=str(m["formula"]), potential=str(m["potential"]),
                                  a_bounds_A=tuple(float(x) for x in m["a_bounds_A"]),
                                  berry_bands=tuple(int(b) for b in m["berry_bands"]),
                                  probe_pairs=tuple(tuple(int(x) for x in p) for p in m["probe_pairs"]))
    settings = materials.MaterialSettings(
        vacuum_A=float(st["vacuum_A"]), relax_xtol_A=float(st["relax_xtol_A"]), symprec=float(st["symprec"]),
        supercell=int(ph["supercell"]), displacement_A=float(ph["displacement_A"]), band_points=int(ph["band_points"]),
        tol_THz=float(v["degeneracy_tol_THz"]), radii_rel=tuple(float(r) for r in v["radii_rel_K"]),
        loop_points=int(v["loop_points"]), slope_radii_rel=tuple(float(r) for r in v["slope_radii_rel_K"]),
        n_directions=int(v["n_directions"]), overlap_min=float(v["overlap_min"]))
    return spec, settings


def spring_law_from_config(m: dict) -> SpringLaw:
    z = {"C": 6, "N": 7}
    factors = {tuple(sorted((z[k[2]], z[k[3]]))): float(v) for k, v in m.items() if k.startswith("f_")}
    return SpringLaw(k0_eV_A2=float(m["k0_eV_A2"]), d0_A=float(m["d0_A"]), decay_long_A=float(m["decay_long_A"]),
                     transverse_ratio=float(m["transverse_ratio"]), decay_trans_A=float(m["decay_trans_A"]),
                     cutoff_A=float(m["cutoff_A"]), species_factors=factors)


def lgscan_from_config(block: dict) -> tuple[list[int], lgscan.ScanSettings]:
    c = block["lgscan"]
    numbers = sorted(layergroups.LAYER_GROUPS) if c["lg_numbers"] == "all" else [int(n) for n in c["lg_numbers"]]
    laws = tuple(spring_law_from_config(m) for m in c["spring_models"][: int(c["n_models"])])
    if not laws:
        raise ValueError("lgscan.n_models must be >= 1")
    s = lgscan.ScanSettings(
        area_per_atom_A2=float(c["area_per_atom_A2"]), c_A=float(c["c_A"]),
        z_range_A=tuple(float(x) for x in c["z_range_A"]), min_distance_A=float(c["min_distance_A"]),
        n_candidates=int(c["n_candidates"]), seed=int(c["structure_seed"]), symprec=float(c["symprec"]),
        displacement_A=float(c["displacement_A"]), tol_THz=float(c["degeneracy_tol_THz"]),
        slope_scales_rel=tuple(float(x) for x in c["slope_scales_rel"]),
        slope_range=tuple(float(x) for x in c["slope_range"]), cone_stability=float(c["cone_stability"]),
        cone_isotropy_min=float(c["cone_isotropy_min"]),
        n_directions=int(c["n_directions"]), berry_radii_rel=tuple(float(x) for x in c["berry_radii_rel"]),
        loop_points=int(c["loop_points"]), overlap_min=float(c["overlap_min"]), quant_atol=float(c["quant_atol"]),
        models=laws)
    return numbers, s


# --- small writers -------------------------------------------------------------------------

def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _meta(t0: float, threads: int, **extra) -> dict:
    return run_meta(t0, threads, ("numpy", "scipy", "phonopy", "spglib", "ase"), model=MODEL_NOTE, **extra)


# --- steps ---------------------------------------------------------------------------------

def run_material(block: dict, *, material: str, scale: str, out, phonopy_params, bands_npz, berry_csv,
                 valley_json=None, threads: int = 1) -> dict:
    """Structure, layer group, Tersoff phonons and the valley analysis of one material."""
    t0 = time.perf_counter()
    seed_everything(0, threads)
    spec, settings = material_from_config(block, material)
    res = materials.run(spec, settings)
    metrics = materials.metrics(res, settings.radii_rel)
    lg = res["layer_group"]
    info = {"material": material, "layer_group": lg.__dict__, "little_cogroup_K": res["irreps_K"]["point_group"],
            "degenerate_set_dims_K_phonopy": res["irreps_K"]["dims"], "pairs_K": res["pairs_K"],
            "pairs_Kp": res["pairs_Kp"], "freq_K_THz": res["freq_K_THz"], "degeneracy_tol_THz": settings.tol_THz,
            "radii_rel_K": settings.radii_rel, "K_reduced": materials.K_POINT}
    write_run_metrics(out, study=STUDY, scale=scale, arm=material, seed=0, metrics=metrics,
                      meta=_meta(t0, threads, potential=spec.potential, **{k: v for k, v in info.items()
                                                                          if k not in ("material",)}))
    with atomic_path(phonopy_params) as tmp:
        res["ph"].save(tmp, settings={"force_constants": True})
    b = res["bands"]
    write_npz(bands_npz, {"material": material, "distance_inv_A": b["distance_inv_A"], "freq_THz": b["freq_THz"],
                           "qpoints": b["qpoints"], "label_distance_inv_A": b["label_distance_inv_A"],
                           "labels": b["labels"], "freq_K_THz": res["freq_K_THz"],
                           "pairs_K": np.array(res["pairs_K"], int).reshape(-1, 2),
                           "lg_number": lg.number, "lg_symbol": lg.symbol, "a0_A": res["a0_A"]})
    write_text(berry_csv, _csv_text(materials.berry_rows(res, settings.radii_rel)))
    if valley_json is not None:
        slopes = {f"b{lo}b{hi}": {"slopes": sl["slopes"], "velocity_THz_A": sl["velocity_THz_A"]}
                  for (lo, hi), sl in res["slopes"].items()}
        write_json(valley_json, {**info, "split_slopes": slopes})
    return metrics


def _candidates(material_files, quant_atol: float) -> dict[int, list[dict]]:
    """LG number → computed materials in it, from material run-metrics files."""
    out: dict[int, list[dict]] = {}
    for f in material_files or []:
        run = read_json(f)
        m = run["metrics"]
        # a material hosts a valley LWP when it has exact pairs at K with |φ| = π there
        hosts = m["n_pairs_K"] > 0 and m["berry_abs_dev_max"] <= quant_atol
        out.setdefault(int(m["lg_number"]), []).append({"name": run["arm"], "hosts": bool(hosts)})
    return out


def run_lgscan(block: dict, *, scale: str, out, table, hosts=None, material_files=None, threads: int = 1,
               progress: bool = False) -> dict:
    """The 80-layer-group scan: confirmed structures, spring phonons, LWPs at every HSP."""
    t0 = time.perf_counter()
    seed_everything(0, threads)
    numbers, settings = lgscan_from_config(block)
    cands = _candidates(material_files, float(block["valley"]["quant_atol"]))
    rows = []
    for n in numbers:
        t = time.perf_counter()
        row = lgscan.scan_group(n, settings)
        computed = cands.get(n, [])
        row["materials_computed"] = ";".join(c["name"] for c in computed)
        # the slot is filled only by a material computed here that itself shows the valley LWP
        row["candidate_material"] = ";".join(c["name"] for c in computed if c["hosts"] and row["host"])
        row["wall_s"] = round(time.perf_counter() - t, 3)
        rows.append(row)
        if progress:
            print(f"LG {n:2d} {row['lg_symbol']:10s} host={row['host']} ({row['wall_s']:.2f} s)", flush=True)
    host_rows = [r for r in rows if r["host"]]
    metrics = {"n_lg_scanned": len(rows), "n_lg_confirmed": sum(r["lg_confirmed"] for r in rows),
               "n_hosts": len(host_rows), "n_lg_models_agree": sum(r["models_agree"] for r in rows),
               "n_lg_floppy": sum(r["floppy"] for r in rows), "n_lg_lwp_at_trim": sum(r["lwp_at_trim"] for r in rows),
               "min_omega2_THz2": min(r["min_omega2_THz2"] for r in rows),
               "n_hosts_non_hexagonal": sum(r["lattice"] != "hexagonal" for r in host_rows),
               "n_candidates_filled": sum(bool(r["candidate_material"]) for r in rows),
               "n_models": len(settings.models)}
    metrics.update({f"host_lg{r['lg_number']}": float(r["host"]) for r in rows})
    for n, comps in cands.items():
        for c in comps:
            metrics[f"lg_of_{c['name']}"] = n
    write_run_metrics(out, study=STUDY, scale=scale, arm="lgscan", seed=0, metrics=metrics,
                      meta=_meta(t0, threads, host_layer_groups=[r["lg_number"] for r in host_rows],
                                 host_symbols=[r["lg_symbol"] for r in host_rows],
                                 paper_candidates="TODO(paper): not known (only the abstract was read)"))
    write_text(table, _csv_text(rows))
    if hosts is not None:
        write_text(hosts, _csv_text([{k: r[k] for k in ("lg_number", "lg_symbol", "lattice", "host_hsps", "berry_phases",
                                                        "little_cogroups", "candidate_material")} for r in host_rows]
                                    or [{"lg_number": "", "lg_symbol": "", "lattice": "", "host_hsps": "",
                                         "berry_phases": "", "little_cogroups": "", "candidate_material": ""}]))
    return metrics


def run_figures(block: dict, *, scale: str, bands_npz, berry_csv, scan_csv, outdir) -> list[Path]:
    """All figures into ``outdir`` (``<name>.png`` for each name in ``figures.FIGURES``)."""
    from . import figures  # matplotlib only where figures are drawn

    outdir = Path(outdir)
    bands = [dict(np.load(p, allow_pickle=False)) for p in bands_npz]
    berry = [list(csv.DictReader(open(p))) for p in berry_csv]
    scan = list(csv.DictReader(open(scan_csv)))
    figures.fig_bands_valley(bands, outdir / "fig_bands_valley.png")
    figures.fig_berry_vs_radius(berry, outdir / "fig_berry_vs_radius.png")
    figures.fig_layergroup_scan(scan, outdir / "fig_layergroup_scan.png")
    return [outdir / f"{name}.png" for name in figures.FIGURES]


def main(argv: list[str] | None = None) -> None:
    ap = study_parser(__doc__, ("material", "lgscan", "figures"))
    ap.add_argument("--material", help="material name (a key of materials: in the config)")
    ap.add_argument("--out", type=Path, help="run metrics JSON (material, lgscan)")
    ap.add_argument("--phonopy-params", type=Path)
    ap.add_argument("--bands-npz", type=Path, nargs="+")
    ap.add_argument("--berry-csv", type=Path, nargs="+")
    ap.add_argument("--valley-json", type=Path)
    ap.add_argument("--table", type=Path)
    ap.add_argument("--hosts", type=Path)
    ap.add_argument("--materials", type=Path, nargs="*", help="material run-metrics files (lgscan)")
    ap.add_argument("--scan-csv", type=Path)
    ap.add_argument("--outdir", type=Path)
    ap.add_argument("--progress", action="store_true")
    need = {"material": ["material", "out", "phonopy_params", "bands_npz", "berry_csv"],
            "lgscan": ["out", "table"], "figures": ["bands_npz", "berry_csv", "scan_csv", "outdir"]}
    args, block = parse_step(ap, argv, need)
    if args.step == "material":
        if len(args.bands_npz) != 1 or len(args.berry_csv) != 1:
            ap.error("step 'material' takes one --bands-npz and one --berry-csv")
        run_material(block, material=args.material, scale=args.scale, out=args.out,
                     phonopy_params=args.phonopy_params, bands_npz=args.bands_npz[0], berry_csv=args.berry_csv[0],
                     valley_json=args.valley_json, threads=args.threads)
    elif args.step == "lgscan":
        run_lgscan(block, scale=args.scale, out=args.out, table=args.table, hosts=args.hosts,
                   material_files=args.materials, threads=args.threads, progress=args.progress)
    else:
        run_figures(block, scale=args.scale, bands_npz=args.bands_npz, berry_csv=args.berry_csv,
                    scan_csv=args.scan_csv, outdir=args.outdir)


if __name__ == "__main__":
    main()
