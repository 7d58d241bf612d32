"""The verdict rule of paperzoo.engine.claims on hand-made metrics."""
import math

import pytest

from scipy import stats

from paperzoo.engine.claims import (ALPHA, NOT_RUN, OUT_OF_REGIME, Side, counts, evaluate, half_width, holm, load_paper,
                                    paired_half_width, verdict)


def side(mean, std, n, ref="a.m"):
    return Side(ref, mean, std, n)


def const(x):
    return Side(None, x, 0.0, math.inf)


def test_clear_improvement_is_reproduced():
    v, nums = verdict(side(0.80, 0.01, 3), ">", side(0.70, 0.01, 3))
    assert v == "reproduced"
    assert nums["diff"] == pytest.approx(0.10)


def test_opposite_sign_beyond_spread_is_contradicted():
    assert verdict(side(0.60, 0.01, 3), ">", side(0.70, 0.01, 3))[0] == "contradicted"
    assert verdict(side(0.80, 0.01, 3), "<", side(0.70, 0.01, 3))[0] == "contradicted"


def test_difference_within_spread_is_inconclusive():
    # d = 0.02, se = 0.0408, t(≈4 dof) ≈ 2.78 → h ≈ 0.11 > d
    assert verdict(side(0.72, 0.05, 3), ">", side(0.70, 0.05, 3))[0] == "inconclusive"


def test_too_few_seeds_is_inconclusive_even_for_a_large_gap():
    v, nums = verdict(side(0.9, 0.0, 2), ">", side(0.1, 0.0, 2), min_seeds=3)
    assert v == "inconclusive" and "fewer than 3" in nums["reason"]


def test_welch_half_width_matches_hand_computation():
    # equal n=3, equal std 0.1: se = 0.1*sqrt(2/3), dof = 4, t_0.975(4) = 2.7764
    se, h = half_width(side(1, 0.1, 3), side(0, 0.1, 3))
    assert se == pytest.approx(0.1 * math.sqrt(2 / 3))
    assert h == pytest.approx(2.7764451 * se, rel=1e-6)


def test_deterministic_sides_use_the_margin_only():
    assert verdict(side(1.0, 0, 1), ">", side(0.9, 0, 1), min_seeds=1)[0] == "reproduced"
    # 1.0 does not beat 0.9 by more than 0.2: the margin is tested, not an indifference zone around 0
    assert verdict(side(1.0, 0, 1), ">", side(0.9, 0, 1), min_seeds=1, atol=0.2)[0] == "contradicted"
    assert verdict(side(1.0, 0, 1), ">", side(0.9, 0, 1), min_seeds=1, atol=0.05)[0] == "reproduced"


def test_agreement_within_tolerance_and_error_bars():
    md, pred = side(1.02, 0.01, 4), const(1.0)
    assert verdict(md, "~=", pred, rtol=0.05)[0] == "reproduced"
    assert verdict(side(1.2, 0.01, 4), "~=", pred, rtol=0.05)[0] == "contradicted"
    # error bars wider than the tolerance: cannot tell
    assert verdict(side(1.0, 0.5, 4), "~=", pred, rtol=0.05)[0] == "inconclusive"


def test_exact_equality_for_counts():
    assert verdict(side(11, 0, 1), "==", const(11), min_seeds=1)[0] == "reproduced"
    assert verdict(side(12, 0, 1), "==", const(11), min_seeds=1)[0] == "contradicted"


def seeds(ref, *values):
    """A metric side with per-seed values (seeds 0..n−1), as metrics.json stores it."""
    import statistics
    return Side(ref, statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0,
                len(values), {str(k): v for k, v in enumerate(values)})


def test_pairing_turns_inconclusive_into_reproduced():
    # Seeds move both arms together (shared init/data order): large spread across seeds,
    # but b − a is +0.02 on every seed up to ±0.002.
    a = seeds("a.acc", 0.60, 0.70, 0.80, 0.65)
    b = seeds("b.acc", 0.621, 0.719, 0.822, 0.668)
    v_welch, n_welch = verdict(b, ">", a)
    v_paired, n_paired = verdict(b, ">", a, paired=True)
    assert (v_welch, n_welch["test"]) == ("inconclusive", "welch")
    assert (v_paired, n_paired["test"]) == ("reproduced", "paired")
    assert n_paired["diff"] == pytest.approx(0.02)


def test_paired_half_width_matches_hand_computation():
    # d = (1, 2, 3): mean 2, sd 1, se 1/sqrt(3), t_0.975(2) = 4.302653
    se, h = paired_half_width([1.0, 2.0, 3.0])
    assert se == pytest.approx(1 / math.sqrt(3))
    assert h == pytest.approx(4.3026527 / math.sqrt(3), rel=1e-6)
    assert paired_half_width([0.5, 0.5, 0.5]) == (0.0, 0.0)   # identical differences: no spread
    assert paired_half_width([0.5]) == (0.0, 0.0)             # one deterministic pair


def test_pairing_can_also_contradict():
    a = seeds("a.acc", 0.60, 0.70, 0.80)
    b = seeds("b.acc", 0.59, 0.69, 0.79)
    assert verdict(b, ">", a, paired=True)[0] == "contradicted"


def test_mismatched_seeds_raise_a_clear_error():
    a = seeds("a.acc", 0.6, 0.7, 0.8)
    b = Side("b.acc", 0.7, 0.1, 3, {"0": 0.6, "1": 0.7, "5": 0.8})
    with pytest.raises(ValueError, match=r"same seeds.*b.acc has seeds \['0', '1', '5'\], a.acc has \['0', '1', '2'\].*paired: false"):
        verdict(b, ">", a, paired=True)
    with pytest.raises(ValueError, match="per-seed values"):
        verdict(side(0.7, 0.1, 3), ">", a, paired=True)   # metrics.json without by_seed


def test_test_names_recorded():
    a, b = seeds("a.acc", 0.6, 0.7, 0.8), seeds("b.acc", 0.7, 0.8, 0.9)
    assert verdict(b, ">", a)[1]["test"] == "welch"
    assert verdict(b, ">", const(0.1), paired=True)[1]["test"] == "one-sample"
    assert verdict(side(11, 0, 1), "==", const(11), min_seeds=1)[1]["test"] == "exact"


PAPER = (
    "study: demo\ntitle: Demo\narxiv: '0000.00000'\npaired: true\nsesoi_rule: 'a tenth of a point'\n"
    "abstract:\n  - {id: a1, text: 'b is better', claims: [c2]}\n"
    "references:\n  - {id: r1, value: 41.4, source: 'arXiv 0000.00000, Table 1', short: 'Table 1', verified: true}\n"
    "claims:\n"
    "  - {id: c1, kind: paper, statement: 'b beats a', lhs: b.acc, op: '>', rhs: a.acc, paper: r1, note: 'caveat',"
    " sesoi: 0.001}\n"
    "  - {id: c2, kind: paper, statement: 'paper only', lhs: b.acc, op: '>', rhs: 0.5, scales: [paper], sesoi: 0.01}\n"
    "  - {id: c3, kind: check, statement: 'unpaired', lhs: b.acc, op: '>', rhs: a.acc, paired: false}\n")


def metrics_with_seeds():
    def m(*v):
        s = seeds("x.y", *v)
        return {"mean": s.mean, "std": s.std, "n": s.n, "by_seed": dict(s.by_seed)}
    return {"arms": {"a": {"acc": m(0.60, 0.70, 0.80)}, "b": {"acc": m(0.62, 0.72, 0.815)}}}


def test_evaluate_pairs_by_study_default_and_lists_other_scales_as_not_run(tmp_path):
    p = tmp_path / "paper.yaml"
    p.write_text(PAPER)
    out = evaluate(load_paper(p), metrics_with_seeds(), "mini")
    c1, c2, c3 = out["claims"]
    assert (c1["test"], c1["verdict"], c1["kind"], c1["note"]) == ("paired", "reproduced", "paper", "caveat")
    assert c1["ours"]["lhs"]["by_seed"] == {"0": 0.62, "1": 0.72, "2": 0.815}
    assert c1["paper"] == {"id": "r1", "value": 41.4, "short": "Table 1", "source": "arXiv 0000.00000, Table 1",
                           "verified": True}
    assert (c2["verdict"], c2["ours"], c2["scales"]) == (NOT_RUN, None, ["paper"])
    assert (c3["test"], c3["verdict"]) == ("welch", "inconclusive")
    assert counts(out["claims"], "paper") == {"reproduced": 1, "negligible": 0, "inconclusive": 0, "contradicted": 0,
                                              OUT_OF_REGIME: 0, NOT_RUN: 1}
    assert out["references"][0]["source"] == "arXiv 0000.00000, Table 1"


def test_rhs_scale_pairs_lhs_with_a_fraction_of_rhs(tmp_path):
    # b = (0.62, 0.72, 0.815) vs 0.9 x a = (0.54, 0.63, 0.72): d_i = (0.08, 0.09, 0.095), all > 0
    p = tmp_path / "paper.yaml"
    p.write_text("paired: true\nlearned: false\nabstract: [{id: a, text: t, claims: [frac, full]}]\nclaims:\n"
                 "  - {id: frac, kind: paper, statement: 'b reaches 90 % of a', lhs: b.acc, op: '>', rhs: a.acc,"
                 " rhs_scale: 0.9}\n"
                 "  - {id: full, kind: paper, statement: 'b reaches a', lhs: b.acc, op: '>', rhs: a.acc,"
                 " rhs_scale: 1.2}\n")
    frac, full = evaluate(load_paper(p), metrics_with_seeds(), "mini")["claims"]
    assert frac["comparison"] == "b.acc > 0.9 × a.acc"
    assert frac["ours"]["rhs"]["ref"] == "0.9 × a.acc"
    assert frac["ours"]["rhs"]["by_seed"] == pytest.approx({"0": 0.54, "1": 0.63, "2": 0.72})
    d = [0.62 - 0.54, 0.72 - 0.63, 0.815 - 0.72]
    assert frac["ours"]["diff"] == pytest.approx(sum(d) / 3)
    assert (frac["test"], frac["verdict"]) == ("paired", "reproduced")
    assert full["verdict"] == "contradicted"     # b is far below 1.2 x a on every seed
    p.write_text("claims:\n  - {id: c1, kind: paper, statement: s, lhs: b.acc, op: '>', rhs: a.acc, rhs_scale: high}\n")
    with pytest.raises(ValueError, match="'rhs_scale' must be a number"):
        load_paper(p)


@pytest.mark.parametrize("claim, message", [
    ("{id: c1, statement: s, lhs: b.acc, op: '>', rhs: a.acc}", "missing key 'kind'"),
    ("{id: c1, kind: paperish, statement: s, lhs: b.acc, op: '>', rhs: a.acc}", "kind 'paperish' not one of"),
    ("{id: c1, kind: paper, statement: s, lhs: b.acc, op: '>', rhs: a.acc, paired: 'yes'}", "'paired' must be"),
])
def test_claim_kind_and_pairing_are_checked_on_load(tmp_path, claim, message):
    p = tmp_path / "paper.yaml"
    p.write_text(f"claims:\n  - {claim}\n")
    with pytest.raises(ValueError, match=message):
        load_paper(p)


def test_evaluate_and_paper_yaml_errors(tmp_path):
    p = tmp_path / "paper.yaml"
    p.write_text(
        "study: demo\ntitle: Demo\narxiv: '0000.00000'\n"
        "learned: false\nabstract: []\n"
        "references:\n  - {id: r1, value: 41.4, source: 'Table 1', verified: true}\n"
        "claims:\n"
        "  - {id: c1, kind: paper, statement: 'b beats a', lhs: b.acc, op: '>', rhs: a.acc, paper: r1}\n"
        "  - {id: c2, kind: paper, statement: 'paper only', lhs: b.acc, op: '>', rhs: 0.5, scales: [paper],"
        " paper: r1}\n")
    metrics = {"arms": {"a": {"acc": {"mean": 0.5, "std": 0.01, "n": 3}},
                        "b": {"acc": {"mean": 0.7, "std": 0.01, "n": 3}}}}
    out = evaluate(load_paper(p), metrics, "mini")
    assert [(c["id"], c["verdict"]) for c in out["claims"]] == [("c1", "reproduced"), ("c2", NOT_RUN)]
    c1 = out["claims"][0]
    assert c1["test"] == "welch"   # no study-level 'paired'
    assert c1["ours"]["lhs"] == {"ref": "b.acc", "mean": 0.7, "std": 0.01, "n": 3}
    assert c1["paper"] == {"id": "r1", "value": 41.4, "short": "Table 1", "source": "Table 1", "verified": True}

    p.write_text("claims:\n  - {id: c1, kind: paper, statement: s, lhs: b.acc, op: '>=', rhs: a.acc}\n")
    with pytest.raises(ValueError, match="op '>='"):
        load_paper(p)
    p.write_text("claims:\n  - {id: c1, kind: paper, statement: s, lhs: b.acc, op: '>', rhs: a.acc, tol: 1}\n")
    with pytest.raises(ValueError, match="unknown key"):
        load_paper(p)
    p.write_text("learned: false\nabstract: [{id: a, text: t, claims: [c1]}]\n"
                 "claims:\n  - {id: c1, kind: paper, statement: s, lhs: b.nope, op: '>', rhs: a.acc}\n")
    with pytest.raises(KeyError, match="metric 'nope' not in arm 'b'"):
        evaluate(load_paper(p), metrics, "mini")


# ---- claims v3: margins, TOST, negligible, Holm, gates, stability, Welch with one run ----

def test_margin_claim_below_its_margin_is_contradicted():
    # "beats by more than 0.10": d_i = (0.04, 0.05, 0.06): d = 0.05, sd 0.01, h = t(0.975, 2)·0.01/√3 ≈ 0.0248.
    # The interval (0.025, 0.075) lies wholly below the margin; the old indifference zone called it inconclusive.
    a, b = seeds("a.m", 0.60, 0.70, 0.80), seeds("b.m", 0.64, 0.75, 0.86)
    v, nums = verdict(b, ">", a, paired=True, atol=0.10)
    assert v == "contradicted"
    assert nums["half_width_95"] == pytest.approx(4.3026527 * 0.01 / math.sqrt(3), rel=1e-6)
    assert verdict(b, ">", a, paired=True, atol=0.02)[0] == "reproduced"   # by more than 0.02: yes
    assert verdict(b, ">", a, paired=True, atol=0.04)[0] == "inconclusive"  # 0.04 lies inside the interval
    assert verdict(a, "<", b, paired=True, atol=0.10)[0] == "contradicted"  # the same claim written with '<'


def test_agreement_is_an_equivalence_test():
    pred = const(1.0)
    # d = 0.06, h = t(0.975, 3)·0.0251/2 ≈ 0.040: the old rule (|d| ≤ tol + h) said reproduced;
    # the interval (0.020, 0.100) is neither inside nor outside ±0.05
    v, nums = verdict(side(1.06, 0.0251, 4), "~=", pred, atol=0.05)
    assert v == "inconclusive" and nums["half_width_95"] == pytest.approx(3.1824463 * 0.0251 / 2, rel=1e-6)
    assert verdict(side(1.02, 0.01, 4), "~=", pred, atol=0.05)[0] == "reproduced"     # (0.004, 0.036) inside
    assert verdict(side(1.10, 0.01, 4), "~=", pred, atol=0.05)[0] == "contradicted"   # (0.084, 0.116) outside
    assert verdict(side(0.90, 0.01, 4), "~=", pred, atol=0.05)[0] == "contradicted"   # outside, below


def test_negligible_when_the_interval_lies_inside_the_smallest_effect_of_interest():
    # d_i = (0.001, −0.001, 0.002, 0): d = 0.0005, sd ≈ 0.00129, h ≈ 0.00205 → (−0.00155, 0.00255)
    a = seeds("a.m", 0.5, 0.6, 0.7, 0.8)
    b = seeds("b.m", 0.501, 0.599, 0.702, 0.8)
    assert verdict(b, ">", a, paired=True)[0] == "inconclusive"                 # no sesoi: a null is never decided
    assert verdict(b, ">", a, paired=True, sesoi=0.01)[0] == "negligible"
    assert verdict(b, ">", a, paired=True, sesoi=0.002)[0] == "inconclusive"    # 0.00255 reaches past it
    # a real effect below the sesoi: the ordering is reproduced, and marked as smaller than the sesoi
    c = seeds("c.m", 0.504, 0.605, 0.706)
    a3 = seeds("a.m", 0.5, 0.6, 0.7)
    assert "below_sesoi" not in verdict(c, ">", a3, paired=True)[1]
    v, nums = verdict(c, ">", a3, paired=True, sesoi=0.01)
    assert v == "reproduced" and nums["below_sesoi"] is True
    assert verdict(a3, ">", c, paired=True, sesoi=0.01)[0] == "contradicted"


def test_p_value_matches_scipy_one_sided_t_test():
    a = seeds("a.m", 0.5, 0.6, 0.7, 0.8)
    b = seeds("b.m", 0.53, 0.61, 0.74, 0.82)
    _, nums = verdict(b, ">", a, paired=True)
    ref = stats.ttest_1samp([0.03, 0.01, 0.04, 0.02], 0.0, alternative="greater").pvalue
    assert nums["p"] == pytest.approx(ref, rel=1e-9)
    _, nums = verdict(b, ">", a, paired=True, atol=0.01)
    assert nums["p"] == pytest.approx(stats.ttest_1samp([0.03, 0.01, 0.04, 0.02], 0.01, alternative="greater").pvalue)


def test_holm_on_a_hand_computed_family():
    # m = 4, α = 0.025: 0.001 < α/4 passes; 0.012 ≥ α/3 = 0.00833 stops the step-down
    assert holm({"a": 0.001, "b": 0.02, "c": 0.012, "d": 0.5}) == {"a": True, "b": False, "c": False, "d": False}
    # 0.004 < α/3, 0.008 < α/2, 0.011 < α: all pass
    assert holm({"a": 0.004, "b": 0.008, "c": 0.011}) == {"a": True, "b": True, "c": True}
    assert ALPHA == 0.025


def _metric(*values):
    s = seeds("x.y", *values)
    return {"mean": s.mean, "std": s.std, "n": s.n, "by_seed": dict(s.by_seed)}


def _paper(tmp_path, claims, **top):
    import yaml
    doc = {"study": "toy", "paired": True, "sesoi_rule": "toy", **top, "claims": claims}
    doc.setdefault("abstract", [{"id": "a", "text": "t", "claims": [c["id"] for c in claims if c["kind"] == "paper"]}])
    p = tmp_path / "paper.yaml"
    p.write_text(yaml.safe_dump(doc))
    return load_paper(p)


def test_holm_turns_a_marginal_paper_verdict_inconclusive(tmp_path):
    base = (0.5, 0.6, 0.7, 0.8)
    d_strong, d_weak = (0.05, 0.051, 0.049, 0.05), (0.02, 0.035, 0.005, 0.02)
    p_weak = stats.ttest_1samp(d_weak, 0.0, alternative="greater").pvalue
    assert ALPHA / 2 < p_weak < ALPHA   # decided alone; second of three in Holm's order, it needs p < α/2
    metrics = {"arms": {"base": {"m": _metric(*base)}, "null": {"m": _metric(0.52, 0.58, 0.71, 0.79)},
                        "strong": {"m": _metric(*(x + d for x, d in zip(base, d_strong)))},
                        "weak": {"m": _metric(*(x + d for x, d in zip(base, d_weak)))}}}
    claims = [{"id": cid, "kind": kind, "statement": cid, "lhs": f"{arm}.m", "op": ">", "rhs": "base.m", "sesoi": 1e-4}
              for cid, kind, arm in (("s", "paper", "strong"), ("w", "paper", "weak"), ("n", "paper", "null"),
                                     ("wp", "prediction", "weak"))]
    out = evaluate(_paper(tmp_path, claims), metrics, "mini", stability=False)
    s, w, n, wp = out["claims"]
    assert n["verdict"] == "inconclusive"
    assert (s["unadjusted"], s["holm"], s["verdict"]) == ("reproduced", "reproduced", "reproduced")
    assert (w["unadjusted"], w["holm"], w["verdict"]) == ("reproduced", "inconclusive", "inconclusive")
    assert w["p"] == pytest.approx(p_weak) and "Holm" in w["ours"]["reason"]
    assert wp["verdict"] == "reproduced"    # predictions are not in the paper family


def test_failed_gate_puts_the_paper_claims_out_of_regime(tmp_path):
    metrics = {"arms": {"a": {"m": _metric(0.5, 0.6, 0.7)}, "b": {"m": _metric(0.6, 0.71, 0.8)},
                        "base": {"ap": _metric(0.01, 0.012, 0.011)}}}
    claims = [{"id": "c", "kind": "paper", "statement": "b beats a", "lhs": "b.m", "op": ">", "rhs": "a.m", "sesoi": 0.01},
              {"id": "g", "kind": "check", "statement": "baseline not hopeless", "lhs": "base.ap", "op": ">",
               "rhs": 0.05, "gate": True}]
    out = evaluate(_paper(tmp_path, claims), metrics, "mini", stability=False)
    c, g = out["claims"]
    assert g["verdict"] == "contradicted"
    assert (c["unadjusted"], c["holm"], c["verdict"]) == ("reproduced", "reproduced", OUT_OF_REGIME)
    assert out["regime"]["in_regime"] is False and [x["id"] for x in out["regime"]["gates"]] == ["g"]
    assert counts(out["claims"], "paper")[OUT_OF_REGIME] == 1
    claims[1]["rhs"] = 0.005   # the gate passes: back in regime
    out = evaluate(_paper(tmp_path, claims), metrics, "mini", stability=False)
    assert out["regime"]["in_regime"] is True and out["claims"][0]["verdict"] == "reproduced"
    with pytest.raises(ValueError, match="regime gate is a 'check' or 'prediction'"):
        _paper(tmp_path, [{**claims[0], "gate": True}])


def test_leave_one_seed_out_marks_a_fragile_verdict(tmp_path):
    a = (0.5, 0.6, 0.7, 0.8, 0.9)
    d = (1.0, 1.2, 0.8, 1.1, -0.2)
    metrics = {"arms": {"a": {"m": _metric(*a)}, "b": {"m": _metric(*(x + y for x, y in zip(a, d)))}}}
    claims = [{"id": "c", "kind": "paper", "statement": "b beats a", "lhs": "b.m", "op": ">", "rhs": "a.m", "sesoi": 0.01,
               "min_seeds": 5}]
    c = evaluate(_paper(tmp_path, claims), metrics, "mini")["claims"][0]
    assert c["verdict"] == "reproduced"
    # independent reference: a one-sided t-test on each 4-seed subset (min_seeds capped at 4)
    kept = sum(stats.ttest_1samp([y for j, y in enumerate(d) if j != i], 0.0, alternative="greater").pvalue < ALPHA
               for i in range(5))
    assert kept < 5 and c["loo_kept"] == pytest.approx(kept / 5) and c["fragile"] is True
    steady = {"arms": {"a": {"m": _metric(*a)}, "b": {"m": _metric(*(x + 1 + 0.01 * i for i, x in enumerate(a)))}}}
    c = evaluate(_paper(tmp_path, claims), steady, "mini")["claims"][0]
    assert (c["verdict"], c["loo_kept"], c["fragile"]) == ("reproduced", 1.0, False)


def test_welch_side_with_one_run_beside_several_is_an_error():
    with pytest.raises(ValueError, match="a single run of a stochastic arm"):
        verdict(side(0.7, 0.0, 1), ">", side(0.5, 0.05, 3), min_seeds=1)
    # two deterministic computations remain fine
    assert verdict(side(0.7, 0.0, 1), ">", side(0.5, 0.0, 1), min_seeds=1)[0] == "reproduced"


@pytest.mark.parametrize("yaml_text, message", [
    ("claims:\n  - {id: c, kind: paper, statement: s, lhs: b.m, op: '>', rhs: a.m, paper: null}\n",
     "smallest effect of interest"),
    ("claims:\n  - {id: c, kind: paper, statement: s, lhs: b.m, op: '>', rhs: a.m, sesoi: 0.1}\n",
     "needs a 'sesoi_source'"),
    ("claims:\n  - {id: c, kind: paper, statement: s, lhs: b.m, op: '~=', rhs: a.m, sesoi: 0.1, sesoi_source: x}\n",
     "applies to '>'/'<'"),
    ("learned: false\nclaims:\n  - {id: c, kind: paper, statement: s, lhs: b.m, op: '>', rhs: a.m}\n",
     "lists the abstract's testable statements"),
    ("learned: false\nabstract: [{id: a, text: t}]\nclaims:\n  - {id: c, kind: paper, statement: s, lhs: b.m, op: '>', rhs: a.m}\n",
     "exactly one of 'claims'"),
    ("learned: false\nabstract: [{id: a, text: t, claims: [zz]}]\nclaims:\n"
     "  - {id: c, kind: paper, statement: s, lhs: b.m, op: '>', rhs: a.m}\n", "claim 'zz' is not in claims"),
    ("learned: false\nabstract: [{id: a, text: t, untestable: 'needs DFT'}]\nclaims:\n"
     "  - {id: c, kind: paper, statement: s, lhs: b.m, op: '>', rhs: a.m}\n", "tests no statement of 'abstract:'"),
])
def test_v3_keys_are_checked_on_load(tmp_path, yaml_text, message):
    p = tmp_path / "paper.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ValueError, match=message):
        load_paper(p)


def test_a_paper_claim_may_cite_a_table_instead_of_the_abstract(tmp_path):
    p = tmp_path / "paper.yaml"
    p.write_text("learned: false\nabstract: [{id: a, text: t, untestable: 'needs DFT'}]\n"
                 "references: [{id: t3, source: 'arXiv 0000.00000, Table 3'}]\n"
                 "claims:\n  - {id: c, kind: paper, statement: s, lhs: b.m, op: '>', rhs: a.m, paper: t3}\n")
    assert load_paper(p)["claims"][0]["id"] == "c"


def test_compound_claim_is_an_intersection_of_its_parts(tmp_path):
    base = (0.5, 0.6, 0.7, 0.8)
    arms = {"base": {"m": _metric(*base)},
            "up": {"m": _metric(*(x + d for x, d in zip(base, (0.05, 0.051, 0.049, 0.05))))},
            "up2": {"m": _metric(*(x + d for x, d in zip(base, (0.03, 0.031, 0.029, 0.03))))},
            "flat": {"m": _metric(*(x + d for x, d in zip(base, (0.01, -0.012, 0.011, -0.01))))},
            "down": {"m": _metric(*(x + d for x, d in zip(base, (-0.05, -0.051, -0.049, -0.05))))}}
    parts = [{"id": a, "kind": "prediction", "statement": a, "lhs": f"{a}.m", "op": ">", "rhs": "base.m"}
             for a in ("up", "up2", "flat", "down")]

    def judge_all(ids):
        claims = parts + [{"id": "all", "kind": "paper", "statement": "every arm beats base", "all_of": ids}]
        return {c["id"]: c for c in evaluate(_paper(tmp_path, claims), {"arms": arms}, "mini", stability=False)["claims"]}

    out = judge_all(["up", "up2"])
    assert out["all"]["verdict"] == "reproduced" and out["all"]["p"] == max(out["up"]["p"], out["up2"]["p"])
    assert out["all"]["ours"]["weakest"] == "up2" and out["all"]["test"] == "all of 2"
    out = judge_all(["up", "flat"])
    assert out["flat"]["verdict"] == "inconclusive" and out["all"]["verdict"] == "inconclusive"
    out = judge_all(["up", "down"])
    assert out["all"]["verdict"] == "contradicted" and out["all"]["p"] == pytest.approx(2 * out["down"]["p"])
    with pytest.raises(ValueError, match="not another simple claim"):
        judge_all(["up", "nope"])
    with pytest.raises(ValueError, match="takes no"):
        _paper(tmp_path, parts + [{"id": "x", "kind": "paper", "statement": "s", "all_of": ["up", "up2"], "lhs": "a.m"}])
