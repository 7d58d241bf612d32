"""valley_phonons: force models, layer groups, valley analysis, the LG scan, steps on `tiny`."""
import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from paperzoo.engine.config import resolve
from paperzoo.engine.io import read_yaml
from paperzoo.studies.valley_phonons import layergroups, lgscan, materials, phonons, potentials, structures, steps, valley
from paperzoo.studies.valley_phonons.potentials import BondSprings, SpringLaw

PKG = Path(steps.__file__).parent
K = materials.K_POINT
VACUUM_A = 10.0


REPO = Path(__file__).resolve().parents[2]


def study_block(scale: str) -> dict:
    """The repository's ``valley_phonons`` config block after the ``scale`` overlay."""
    return resolve({**read_yaml(REPO / "config/config.yaml"), "scale": scale}, REPO)["valley_phonons"]


@pytest.fixture(scope="module")
def tersoff_phonons():
    """Relaxed graphene and hBN with Tersoff phonons on a 6x6x1 supercell (settings of paper.yaml's `earlier_run`)."""
    out = {}
    for name, formula, pot in (("graphene", "C2", "C_LindsayBroido2010.tersoff"), ("hbn", "BN", "BN_Sevik2011.tersoff")):
        calc = potentials.tersoff(pot)
        a0, _ = structures.relax_lattice_constant(formula, calc, bounds_A=(2.3, 2.7), vacuum_A=VACUUM_A, xtol_A=1e-7)
        atoms = structures.monolayer(formula, a0, VACUUM_A)
        ph = phonons.build_phonopy(atoms, (6, 6), symprec=1e-5)
        phonons.compute_force_constants(ph, lambda _sc, c=calc: c, distance_A=0.01)
        out[name] = {"a0": a0, "atoms": atoms, "ph": ph}
    return out


# --- potentials.py ------------------------------------------------------------------------

def numerical_forces(atoms, h=1e-5):
    f = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for x in range(3):
            for sign in (1, -1):
                a = atoms.copy()
                a.calc = atoms.calc
                a.positions[i, x] += sign * h
                f[i, x] -= sign * a.get_potential_energy() / (2 * h)
    return f


@pytest.mark.parametrize("formula,pot", [("C2", "C_LindsayBroido2010.tersoff"), ("BN", "BN_Sevik2011.tersoff")])
def test_tersoff_forces_match_finite_differences_of_energy(formula, pot):
    atoms = structures.monolayer(formula, 2.50, VACUUM_A).repeat((2, 1, 1))
    atoms.positions += np.random.default_rng(1).normal(scale=0.05, size=atoms.positions.shape)
    atoms.calc = potentials.tersoff(pot)
    assert_allclose(atoms.get_forces(), numerical_forces(atoms), atol=2e-5)


def test_bond_springs_forces_match_energy_and_are_linear():
    atoms = layergroups.build(66, area_per_atom_A2=6.0, c_A=20.0, z_range_A=(0.5, 1.5), min_distance=1.4,
                              seed=0).primitive
    calc = BondSprings(atoms, SpringLaw())
    moved = atoms.copy()
    u = np.random.default_rng(2).normal(scale=0.02, size=atoms.positions.shape)
    moved.positions += u
    moved.calc = calc
    assert_allclose(moved.get_forces(), numerical_forces(moved, h=1e-4), atol=1e-7)
    f1 = moved.get_forces()
    moved.positions = atoms.positions + 2 * u  # harmonic: forces exactly linear in u
    assert_allclose(moved.get_forces(), 2 * f1, rtol=1e-10, atol=1e-12)


def test_hbn_homonuclear_entries_are_inert():
    """The stand-in B-B-x / N-N-x entries switch off below every B-B, N-N distance of hBN."""
    calc = potentials.tersoff("BN_Sevik2011.tersoff")
    inert = [k for k in calc.parameters if k[0] == k[1]]
    assert sorted(inert) == [("B", "B", "B"), ("B", "B", "N"), ("N", "N", "B"), ("N", "N", "N")]
    assert max(calc.parameters[k].R + calc.parameters[k].D for k in inert) < 2.3  # << a0 ≈ 2.50 Å
    atoms = structures.monolayer("BN", 2.4979, VACUUM_A)
    atoms.calc = calc
    e0 = atoms.get_potential_energy()
    for k in inert:
        calc.set_parameters(k, A=1e4, B=1e3)
    atoms.calc = calc
    atoms.positions[0, 0] += 1e-9  # force a recalculation
    assert atoms.get_potential_energy() == pytest.approx(e0, abs=1e-9)


# --- structures.py / phonons.py / valley.py (graphene vs hBN) -----------------------------

def test_lattice_constants_and_layer_groups(tersoff_phonons):
    a0 = [tersoff_phonons[m]["a0"] for m in ("graphene", "hbn")]
    lgs = [structures.layer_group(tersoff_phonons[m]["atoms"], 1e-5) for m in ("graphene", "hbn")]
    assert_allclose(a0, [2.49205, 2.49786], atol=2e-5)  # earlier run (paper.yaml `earlier_run`): 2.4920, 2.4979
    assert_allclose([g.number for g in lgs], [80, 78])
    assert_allclose([g.space_group_number for g in lgs], [191, 187])
    assert [g.symbol for g in lgs] == ["p6/mmm", "p-6m2"]


def test_frequencies_and_degeneracies_at_K(tersoff_phonons):
    ref = {"graphene": [651.2078, 651.2078, 1187.3229, 1187.3229, 1189.6407, 1669.4084],  # earlier run: 651.22 x2, 1187.34 x2, ...
           "hbn": [412.1797, 469.1873, 864.0557, 1084.0308, 1233.9607, 1625.6562]}        # earlier run: 412.18, 469.16, ...
    for name, pairs in (("graphene", [(0, 1), (2, 3)]), ("hbn", [])):
        ph = tersoff_phonons[name]["ph"]
        f = phonons.frequencies(ph, np.array([K, valley.valley_partner(K)]))
        assert_allclose(f[0] * phonons.THZ_TO_CM1, ref[name], atol=2e-3)
        assert valley.twofold_pairs(f[0], 1e-9) == pairs
        assert valley.twofold_pairs(f[1], 1e-9) == pairs
    ir = valley.irreps_at(tersoff_phonons["graphene"]["ph"], K, 1e-9)
    assert ir["point_group"] == "-6m2" and ir["dims"] == [2, 2, 1, 1]
    assert valley.irreps_at(tersoff_phonons["hbn"]["ph"], K, 1e-9)["point_group"] == "-6"


def test_graphene_crossings_are_linear(tersoff_phonons):
    ph = tersoff_phonons["graphene"]["ph"]
    k_len = valley.q_length_inv_A(ph, K)
    sl = valley.splitting_slopes(ph, K, (0, 1), [r * k_len for r in (1e-5, 2e-5, 4e-5)], 6, angle0=0.1)
    assert_allclose(sl["slopes"], 1.0, atol=1e-3)
    assert sl["velocity_THz_A"] == pytest.approx(88.26, abs=0.05)  # earlier run: cone slope 2 x 88.3 THz·Å


def test_berry_phase_pi_in_graphene_and_not_quantized_in_hbn(tersoff_phonons):
    for name, bands in (("graphene", [0, 1, 2, 3]), ("hbn", [0, 1])):
        ph = tersoff_phonons[name]["ph"]
        f = phonons.frequencies(ph, K)[0]
        groups = {n: g for g in valley.degenerate_sets(f, 1e-9) for n in g}
        k_len = valley.q_length_inv_A(ph, K)
        radii = [r * k_len for r in (1e-3, 2e-2)]
        at_k = valley.berry_loops(ph, K, bands, groups, radii, n_points=48, overlap_min=0.9)
        at_kp = valley.berry_loops(ph, valley.valley_partner(K), bands, groups, radii, n_points=48, overlap_min=0.9)
        phi_k = np.array([lp.phi_rad for lp in at_k]) / np.pi  # (radius, band)
        phi_kp = np.array([lp.phi_rad for lp in at_kp]) / np.pi
        valid = np.array([lp.valid for lp in at_k])
        if name == "graphene":
            assert_allclose(np.abs(phi_k[0]), 1.0, atol=1e-6)  # both pairs at r = 1e-3 |K|
            assert_allclose(np.abs(phi_k[1, :2]), 1.0, atol=1e-6)  # ZA/ZO also at 2e-2 |K|
            # LA/LO at 2e-2 |K| mixes with TA (2.3 cm-1 above): flagged invalid, not used
            assert valid.tolist() == [[True] * 4, [True, True, False, False]]
        else:
            assert_allclose(np.abs(phi_k[:, 0]), [1.73e-4, 0.0627], atol=2e-4)  # earlier run: 0.0002, 0.0628
            assert valid.all()
        # time reversal: φ(K′) = −φ(K) mod 2π
        assert_allclose(np.angle(np.exp(1j * np.pi * (phi_k + phi_kp))), 0.0, atol=1e-6)


def test_berry_phase_of_analytic_two_band_model():
    """The discrete Berry phase on H = r(cos θ σx + sin θ σy) + m σz: lower band φ = π(1 − m/√(m² + r²)) (mod 2π)."""
    theta = 2 * np.pi * np.arange(400) / 400
    for m, expected in ((0.0, 1.0), (0.5, 1 - 0.5 / np.sqrt(1.25))):
        h = np.array([[[m, np.exp(-1j * t)], [np.exp(1j * t), -m]] for t in theta])
        _, ev = np.linalg.eigh(h)
        assert abs(valley.berry_phase(ev, 0)) / np.pi == pytest.approx(expected, abs=1e-4)


def test_cone_eigenvalues_recover_MtM():
    m = np.array([[2.0, 0.5], [0.0, 1.0], [0.3, 0.0]])  # 3x2 linear map q -> d
    alphas = 0.1 + np.pi * np.arange(6) / 6
    units = np.stack([np.cos(alphas), np.sin(alphas), 0 * alphas], axis=1)
    half = np.linalg.norm(units[:, :2] @ m.T, axis=1)
    assert_allclose(valley.cone_eigenvalues(units, half), np.linalg.eigvalsh(m.T @ m), rtol=1e-10)


# --- layergroups.py / lgscan.py -------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 5, 10, 25, 36, 52, 65, 67, 78, 80])
def test_layer_group_structures_confirmed_by_spglib(n):
    st = layergroups.build(n, area_per_atom_A2=6.0, c_A=20.0, z_range_A=(0.5, 1.5), min_distance=1.4, seed=0)
    conf = layergroups.confirm(st, 1e-5)
    assert conf["confirmed"], conf
    assert conf["lg_spglib"] == n and conf["n_ops_spglib"] == len(st.rotations)
    # the primitive reduction keeps the group: spglib on the primitive cell finds the same number
    prim = structures.layer_group(st.primitive, 1e-5)
    assert prim.number == n and prim.n_operations == len(st.prim_rotations)


def test_high_symmetry_points():
    labels = {}
    for n in (1, 10, 49, 78, 79, 80):
        st = layergroups.build(n, area_per_atom_A2=6.0, c_A=20.0, z_range_A=(0.5, 1.5), min_distance=1.4, seed=0)
        labels[n] = [layergroups.point_label(q) for q in layergroups.high_symmetry_points(st.prim_rotations)]
    assert labels[1] == ["G", "0,1/2", "1/2,0", "1/2,1/2"]     # oblique: the four TRIMs
    assert labels[10] == ["G", "0,1/2", "1/2,1/2"]              # centred: two TRIMs related by the group
    assert labels[49] == ["G", "0,1/2", "1/2,1/2"]              # square: Γ, X, M
    assert labels[78] == ["G", "0,1/2", "1/3,1/3"]              # p-6m2: mirrors map K onto K′
    assert labels[79] == ["G", "0,1/2", "1/3,1/3", "2/3,2/3"]   # p-62m: K and K′ distinct
    assert labels[80] == ["G", "0,1/2", "1/3,1/3"]


def test_bond_springs_have_no_floppy_modes():
    s = lgscan.ScanSettings()
    for n in (1, 25, 66, 80):
        st = layergroups.build(n, area_per_atom_A2=6.0, c_A=20.0, z_range_A=(0.5, 1.5), min_distance=1.4, seed=0)
        ph, n_isolated = lgscan.spring_phonons(st.primitive, SpringLaw(), s)
        assert n_isolated == 0
        assert lgscan.min_omega2_THz2(ph, s.generic_q) > 0.1  # THz²
        f_gamma = phonons.frequencies(ph, np.zeros(3))[0]
        assert_allclose(f_gamma[:3], 0.0, atol=1e-5)  # only the three acoustic modes vanish at Γ
        assert f_gamma[3] > 0.1


@pytest.mark.parametrize("n,host", [(32, False), (52, False), (66, True), (67, False), (78, False), (79, True)])
def test_scan_separates_hosts(n, host):
    _, settings = steps.lgscan_from_config(study_block("mini"))  # both spring laws
    row = lgscan.scan_group(n, settings)
    assert row["lg_confirmed"] and not row["floppy"] and row["models_agree"]
    assert row["host"] is host
    assert row["lwp_at_trim"] is False
    if host:
        assert row["host_hsps"] in ("1/3,1/3", "1/3,1/3;2/3,2/3")
        # every twofold pair at K is a valley LWP with |φ| = π
        deg = dict(x.split(":") for x in row["degeneracies"].split(";"))
        lwp = dict(x.split(":") for x in row["lwp_count"].split(";"))
        assert lwp["1/3,1/3"] == deg["1/3,1/3"] != "0"


# --- steps.py on the tiny scale ------------------------------------------------------------

def test_steps_run_end_to_end_on_tiny(tmp_path):
    from paperzoo.engine.claims import NOT_RUN, VERDICTS, evaluate, load_paper
    from paperzoo.engine.metrics import aggregate
    from paperzoo.studies.valley_phonons import figures

    block = study_block("tiny")
    block["lgscan"]["lg_numbers"] = [65, 66, 74, 78, 80]  # a slice of the scan keeps the test short
    (tmp_path / "params.json").write_text(json.dumps(block))  # the rules pass the block as JSON
    block = json.loads((tmp_path / "params.json").read_text())
    t = tmp_path
    runs = []
    for m in ("graphene", "hbn"):
        runs.append(t / f"runs/{m}/seed0/metrics.json")
        steps.run_material(block, material=m, scale="tiny", out=runs[-1],
                           phonopy_params=t / f"runs/{m}/seed0/phonopy_params.yaml",
                           bands_npz=t / f"runs/{m}/seed0/bands.npz", berry_csv=t / f"tables/berry_{m}.csv",
                           valley_json=t / f"runs/{m}/seed0/valley.json")
    runs.append(t / "runs/lgscan/seed0/metrics.json")
    steps.run_lgscan(block, scale="tiny", out=runs[-1], table=t / "tables/layergroup_scan.csv",
                     hosts=t / "tables/host_layergroups.csv", material_files=runs[:2])
    agg = aggregate(runs)
    for arm, metrics in agg["arms"].items():
        assert all("." not in name for name in metrics), arm
    scan_header = (t / "tables/layergroup_scan.csv").read_text().splitlines()[0].split(",")
    for col in ("lg_number", "lg_symbol", "hsps_tested", "degeneracies", "berry_phases", "host", "candidate_material"):
        assert col in scan_header
    hosts = (t / "tables/host_layergroups.csv").read_text().splitlines()
    assert [h.split(",")[0] for h in hosts[1:]] == ["66", "80"]
    assert "graphene" in hosts[2]
    import phonopy
    ph = phonopy.load(t / "runs/graphene/seed0/phonopy_params.yaml")  # the artifact round-trips
    assert ph.force_constants.shape[1] == 18  # 3x3x1 supercell at tiny
    f_k = json.loads((t / "runs/graphene/seed0/valley.json").read_text())["freq_K_THz"]
    assert_allclose(phonons.frequencies(ph, K)[0], f_k, atol=1e-8)
    pngs = steps.run_figures(block, scale="tiny",
                             bands_npz=[t / f"runs/{m}/seed0/bands.npz" for m in ("graphene", "hbn")],
                             berry_csv=[t / f"tables/berry_{m}.csv" for m in ("graphene", "hbn")],
                             scan_csv=t / "tables/layergroup_scan.csv", outdir=t / "figures")
    assert [p.stem for p in pngs] == list(figures.FIGURES)
    assert all(p.stat().st_size > 10_000 for p in pngs)
    # every claim resolves and gets a verdict (outcomes may go either way)
    paper = load_paper(PKG / "paper.yaml")
    out = evaluate(paper, agg, "tiny")
    assert len(out["claims"]) == len(paper["claims"])
    assert {c["verdict"] for c in out["claims"]} <= {*VERDICTS, NOT_RUN}
