"""interface_phonons: chain Green's functions, SCPH, localized modes, NEMD, steps on `tiny`."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from paperzoo.engine.config import resolve, study_block
from paperzoo.engine.io import read_yaml
from paperzoo.studies.interface_phonons import chain, localized, md, nemd_theory, scph, steps
from paperzoo.studies.interface_phonons.units import PhysicalInterface, UnitSystem

REPO = Path(__file__).resolve().parents[2]

BRIEF = dict(m_left=1.0, k_left=1.0, m_right=2.0, k_right=1.0)  # reduced model of config/config.yaml
K_INT, LAM = 0.05, 0.05


def device(k_int=K_INT, **kw):
    return chain.interface_device(**{**BRIEF, **kw}, k_int=k_int)


# --- chain.py ---------------------------------------------------------------------------

@pytest.mark.parametrize("m_right,k_right", [(2.0, 1.0), (1.0, 1.0), (4.0, 0.5), (0.5, 3.0)])
def test_low_frequency_transmission_is_acoustic_mismatch(m_right, k_right):
    dev = chain.interface_device(m_left=1.0, k_left=1.0, m_right=m_right, k_right=k_right, k_int=0.05)
    z_l, z_r = 1.0, math.sqrt(m_right * k_right)
    assert transmission_at(dev, 1e-4) == pytest.approx(4 * z_l * z_r / (z_l + z_r) ** 2, rel=1e-2)


def transmission_at(dev, w):
    return float(chain.transmission(dev, np.array([w]))[0])


def test_transmission_vanishes_above_lower_band_edge_and_is_one_for_uniform_chain():
    dev = device()
    cut = dev.continuum_edges()[0]
    assert cut == pytest.approx(math.sqrt(2))
    above = np.linspace(cut * (1 + 1e-9), 2.5, 50)
    assert np.max(np.abs(chain.transmission(dev, above))) == 0.0
    assert np.all(chain.transmission(dev, np.linspace(0.01, cut * 0.999, 50)) > 0)
    uniform = chain.interface_device(m_left=1, k_left=1, m_right=1, k_right=1, k_int=1)
    assert_allclose(chain.transmission(uniform, np.linspace(0.01, 1.99, 20)), 1.0, rtol=1e-12)


def test_recursive_green_function_matches_dense_inverse():
    dev = device(m_a=0.4, onsite_b=0.3)
    omega = np.array([0.3, 1.1, 1.7, 2.3])
    gf = chain.green(dev, omega)
    d = dev.system_diagonal(omega)
    for j in range(omega.size):
        g = np.linalg.inv(np.diag(d[j]) + np.diag(dev.springs, 1) + np.diag(dev.springs, -1))
        assert_allclose(gf.first[j], g[:, 0], atol=1e-12)
        assert_allclose(gf.last[j], g[:, -1], atol=1e-12)
        assert_allclose(gf.diag[j], np.diag(g), atol=1e-12)
        y = np.zeros(dev.n)
        y[dev.bond], y[dev.bond + 1] = 1, -1
        assert chain.bond_green(dev, omega[j:j + 1])[0] == pytest.approx(y @ g @ y, abs=1e-12)


def test_langevin_lead_is_impedance_matched_at_low_frequency():
    lead = chain.SemiInfiniteLead(1.0, 1.0)
    w = np.array([1e-3])
    gam_semi = -2 * chain.self_energy(lead, w, 1.0).imag
    gam_lang = -2 * chain.self_energy(chain.LangevinLead(1.0), w, 1.0).imag
    assert_allclose(gam_lang, gam_semi, rtol=1e-6)


# --- scph.py ----------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0.05, 0.2, 1.0])
@pytest.mark.parametrize("temperature", [0.01, 0.5])
def test_classical_gf_y2_equals_equipartition(k, temperature):
    y2 = scph.y2_real_axis(device(k_int=k), temperature, quantum=False)
    assert y2 == pytest.approx(temperature / k, rel=2e-2)


@pytest.mark.parametrize("temperature", [0.01, 0.1, 0.5])
def test_classical_scph_matches_closed_form(temperature):
    res = scph.solve_scph(device(), k_int=K_INT, lam=LAM, tol=1e-9,
                          y2_of=lambda c: scph.y2_real_axis(c, temperature, quantum=False))
    assert res.k_eff == pytest.approx(scph.keff_closed_form(K_INT, LAM, temperature), rel=5e-3)
    assert res.k_eff == pytest.approx(0.5 * (K_INT + math.sqrt(K_INT**2 + 12 * LAM * temperature)), rel=5e-3)


def test_quantum_keff_is_monotone_and_matches_brief_table():
    temps = [0.0, 0.01, 0.1, 0.5]
    k = [scph.solve_scph(device(), k_int=K_INT, lam=LAM, y2_of=lambda c, t=t: scph.y2_quantum(c, t)).k_eff
         for t in temps]
    assert np.all(np.diff(k) > 0)
    assert_allclose(k, [0.2035, 0.2037, 0.2173, 0.3192], atol=1e-3)  # k_eff quantum of our earlier feasibility run (regression, not the paper's)


def test_matsubara_and_real_axis_y2_agree_without_bound_states():
    dev = device(k_int=0.2)
    for t in (0.0, 0.05, 0.5):
        assert scph.y2_quantum(dev, t) == pytest.approx(scph.y2_real_axis(dev, t), rel=1e-5)


def test_harmonic_transmission_does_not_depend_on_temperature():
    curves = []
    for t in (0.0, 0.1, 1.0):
        res = scph.solve_scph(device(), k_int=K_INT, lam=0.0, y2_of=lambda c, t=t: scph.y2_quantum(c, t))
        curves.append(chain.transmission(device(k_int=res.k_eff), np.linspace(0.01, 1.4, 50)))
    assert np.ptp(np.array(curves), axis=0).max() == 0.0


def test_boltzmann_y2_limits():
    assert scph.y2_boltzmann(K_INT, LAM, 1e-5) == pytest.approx(1e-5 / K_INT, rel=1e-3)  # harmonic limit
    # pure quartic: ⟨y²⟩ = 2 sqrt(T/λ) Γ(3/4)/Γ(1/4)
    t = 0.3
    exact = 2 * math.sqrt(t / LAM) * math.gamma(0.75) / math.gamma(0.25)
    assert scph.y2_boltzmann(0.0, LAM, t) == pytest.approx(exact, rel=1e-8)


# --- localized.py -----------------------------------------------------------------------

def test_light_interface_atoms_carry_an_out_of_band_localized_mode():
    plain = chain.interface_device(**BRIEF, k_int=0.3, n_cells=1)
    assert localized.bound_states(plain) == []
    dev = localized.light_interface_device(**BRIEF, k_int=0.3, m_a=0.4, m_b=0.4)
    states = localized.bound_states(dev)
    assert len(states) == 1
    mode = states[0]
    assert mode.omega > dev.band_top()
    assert 0 < mode.weight_interface <= mode.weight_device < 1
    fm = localized.finite_modes(dev, 30)
    assert np.min(np.abs(fm.omega - mode.omega)) < 1e-10
    assert fm.ipr[np.argmin(np.abs(fm.omega - mode.omega))] > 10 / fm.omega.size  # far from extended ~1/N
    # LDOS sum rule: continuum (exact, η = 0) + δ weight of the bound state = 1
    nodes, wts = chain.segment_nodes([0.0] + dev.continuum_edges(), 400)
    cont = np.sum(wts * chain.local_dos(dev, nodes, dev.bond))
    assert cont + mode.weight_a == pytest.approx(1.0, abs=1e-10)


def test_free_end_surface_mode_matches_analytic_frequency():
    # decoupled light end atom m' < m/2 on a chain (m = k = 1): ω² = 2(1 + cosh κ), e^κ = m/m' − 1
    m_a = 0.3
    dev = localized.light_interface_device(**BRIEF, k_int=1e-9, m_a=m_a, m_b=2.0)
    kappa = math.log(1 / m_a - 1)
    expected = math.sqrt(2 * (1 + math.cosh(kappa)))
    assert any(abs(s.omega - expected) < 1e-6 for s in localized.bound_states(dev))


def test_localized_mode_hardens_with_temperature_through_quartic_term():
    kw = dict(**BRIEF, k_int=K_INT, lam=LAM, m_a=0.4, m_b=0.4, onsite_a=0.0, onsite_b=0.0,
              temperatures=[0.0, 1.0], n_side=20, ldos_omega=np.linspace(0.01, 2.6, 50), ldos_eta=0.01,
              y2_of_t=lambda t: (lambda c: scph.y2_quantum(c, t)))
    res = localized.localization_vs_temperature(**kw)
    assert res["n_bound_base"] == 0 and np.all(res["n_bound"] == 1)
    assert np.all(res["omega"] > res["band_top"])
    assert res["omega"][1] > res["omega"][0] > res["omega_harmonic"]
    assert res["weight"][1] > res["weight"][0]


# --- md.py ------------------------------------------------------------------------------

def small_setup(**kw):
    base = dict(n_left=6, n_right=6, **BRIEF, k_int=K_INT, gamma_left=1.0, gamma_right=math.sqrt(0.5),
                dt=0.05, n_replicas=8, block_len=50, n_blocks=3, n_equil_blocks=1)
    return md.NemdSetup(**{**base, **kw})


def test_md_conserves_energy_without_baths():
    setup = small_setup(dt=0.02)
    run = md.NemdRun("q", LAM, 0.5, 0.5)
    rng = np.random.default_rng(3)
    st = md._init_state(setup, run, rng)
    st.u[:] = rng.standard_normal(st.u.shape)  # strongly anharmonic start: |y| ~ 1
    args = (setup.masses(), setup.springs(), setup.bond, LAM)
    e0 = md.energy(st.u, st.v, *args)
    drift = []
    for _ in range(4):
        md.integrate_block(st, setup, run, None, 500)
        drift.append(np.max(np.abs(md.energy(st.u, st.v, *args) / e0 - 1)))
    assert max(drift) < 1e-3


def test_md_is_deterministic_per_seed(tmp_path):
    setup, runs = small_setup(), [md.NemdRun("h", 0.0, 0.15, 0.05), md.NemdRun("q", LAM, 0.15, 0.05)]
    a = md.run_series(setup, runs, seed=7, final=tmp_path / "a.json", progress=False)
    b = md.run_series(setup, runs, seed=7, final=tmp_path / "b.json", progress=False)
    c = md.run_series(setup, runs, seed=8, final=tmp_path / "c.json", progress=False)
    assert [(r.g, r.g_se, r.y2) for r in a] == [(r.g, r.g_se, r.y2) for r in b]
    assert a[1].g != c[1].g


def test_md_resume_after_kill_gives_identical_result(tmp_path, monkeypatch):
    setup, runs = small_setup(), [md.NemdRun("h", 0.0, 0.15, 0.05), md.NemdRun("q", LAM, 0.15, 0.05)]
    ref = md.run_series(setup, runs, seed=1, final=tmp_path / "ref.json", progress=False)
    real, calls = md.integrate_block, {"n": 0}

    def killed_after_five(*args, **kw):
        calls["n"] += 1
        if calls["n"] > 5:  # in the second run (4 blocks per run): state and a finished run on disk
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kw)

    final = tmp_path / "out.json"
    monkeypatch.setattr(md, "integrate_block", killed_after_five)
    with pytest.raises(KeyboardInterrupt):
        md.run_series(setup, runs, seed=1, final=final, every_s=0, progress=False)
    assert (tmp_path / "out.json.partial").exists()
    monkeypatch.setattr(md, "integrate_block", real)
    resumed = md.run_series(setup, runs, seed=1, final=final, every_s=0, progress=False)
    for r, s in zip(ref, resumed):
        assert (r.g, r.g_se, r.y2) == (s.g, s.g_se, s.y2)
        assert_allclose(r.t_profile, s.t_profile, rtol=0, atol=0)


def test_ness_prediction_reduces_to_equilibrium():
    setup = small_setup(n_left=10, n_right=10)
    assert nemd_theory.equilibrium_check(setup, temperature=0.2, n_panels=100) < 1e-4
    p = nemd_theory.predict(setup, lam=0.0, t_hot=0.2, t_cold=0.2, n_panels=100)
    assert p["keff"] == K_INT and p["g_scph"] == p["g_landauer"]


# --- units.py ---------------------------------------------------------------------------

def test_units_reference_values():
    u = UnitSystem(12.011, 25.0)
    assert u.omega0_rad_per_s == pytest.approx(1.4171e14, rel=1e-3)
    assert u.temperature0_K == pytest.approx(1082.5, rel=1e-3)
    assert u.length0_m * u.length0_m * u.k0_N_per_m == pytest.approx(1.054571817e-34 * u.omega0_rad_per_s)
    red = PhysicalInterface(12.011, 25.0, 24.022, 25.0, 0.18, 0.67).dimensionless()
    assert red["m_left"] == 1 and red["m_right"] == pytest.approx(2) and red["k_int"] == pytest.approx(0.0072)
    assert float(u.omega_to_THz(2.0)) == pytest.approx(2 * 1.4171e14 / (2 * math.pi) / 1e12, rel=1e-3)


# --- steps.py on the tiny scale ---------------------------------------------------------

def test_steps_run_end_to_end_on_tiny(tmp_path):
    from paperzoo.engine.claims import NOT_RUN, VERDICTS, evaluate, load_paper
    from paperzoo.engine.metrics import aggregate
    from paperzoo.studies.interface_phonons import figures

    block = study_block(resolve({**read_yaml(REPO / "config/config.yaml"), "scale": "tiny"}, REPO), "interface_phonons")
    (tmp_path / "params.json").write_text(json.dumps(block))  # the rules pass the block as JSON
    block = json.loads((tmp_path / "params.json").read_text())
    t = tmp_path
    steps.run_elastic(block, scale="tiny", out=t / "elastic.json", npz=t / "elastic.npz",
                      keff_csv=t / "keff.csv", transmission_csv=t / "tr.csv", physical_csv=t / "ph.csv",
                      conductance_csv=t / "g.csv")
    steps.run_localized(block, scale="tiny", out=t / "localized.json", table=t / "loc.csv", npz=t / "loc.npz")
    runs = [t / "elastic.json", t / "localized.json"]
    for seed in range(3):
        runs.append(t / f"md{seed}.json")
        steps.run_md(block, scale="tiny", seed=seed, out=runs[-1], table=t / f"md{seed}.csv", progress=False)
        assert not (t / f"md{seed}.json.partial").exists()
    agg = aggregate(runs)
    for arm, metrics in agg["arms"].items():
        assert all("." not in name for name in metrics), arm
    (t / "metrics.json").write_text(json.dumps(agg))
    pngs = steps.run_figures(block, scale="tiny", metrics=t / "metrics.json", elastic_npz=t / "elastic.npz",
                             localized_npz=t / "loc.npz", outdir=t / "figures")
    assert [p.stem for p in pngs] == list(figures.FIGURES)
    assert all(p.stat().st_size > 10_000 for p in pngs)
    assert (t / "tr.csv").read_text().splitlines()[0].startswith("omega,T_harmonic,T_quartic_T0,")
    assert (t / "ph.csv").read_text().splitlines()[0].startswith("freq_THz,T_harmonic,T_quartic_0K,")
    # every claim resolves against the tiny metrics and gets a verdict (outcomes may go either way)
    paper = load_paper(steps.Path(steps.__file__).with_name("paper.yaml"))
    for scale in ("tiny", "mini"):
        out = evaluate(paper, agg, scale)
        assert len(out["claims"]) == len(paper["claims"])
        assert {c["verdict"] for c in out["claims"]} <= {*VERDICTS, NOT_RUN}
