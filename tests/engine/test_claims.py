"""The verdict rule of paperzoo.engine.claims on hand-made metrics."""
import math

import pytest

from paperzoo.engine.claims import NOT_RUN, Side, counts, evaluate, half_width, load_paper, paired_half_width, verdict


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


def test_deterministic_sides_use_tolerance_only():
    assert verdict(side(1.0, 0, 1), ">", side(0.9, 0, 1), min_seeds=1)[0] == "reproduced"
    assert verdict(side(1.0, 0, 1), ">", side(0.9, 0, 1), min_seeds=1, atol=0.2)[0] == "inconclusive"


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
    "study: demo\ntitle: Demo\narxiv: '0000.00000'\npaired: true\n"
    "references:\n  - {id: r1, value: 41.4, source: 'arXiv 0000.00000, Table 1', short: 'Table 1', verified: true}\n"
    "claims:\n"
    "  - {id: c1, kind: paper, statement: 'b beats a', lhs: b.acc, op: '>', rhs: a.acc, paper: r1, note: 'caveat'}\n"
    "  - {id: c2, kind: paper, statement: 'paper only', lhs: b.acc, op: '>', rhs: 0.5, scales: [paper]}\n"
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
    assert counts(out["claims"], "paper") == {"reproduced": 1, "inconclusive": 0, "contradicted": 0, NOT_RUN: 1}
    assert out["references"][0]["source"] == "arXiv 0000.00000, Table 1"


def test_rhs_scale_pairs_lhs_with_a_fraction_of_rhs(tmp_path):
    # b = (0.62, 0.72, 0.815) vs 0.9 x a = (0.54, 0.63, 0.72): d_i = (0.08, 0.09, 0.095), all > 0
    p = tmp_path / "paper.yaml"
    p.write_text("paired: true\nclaims:\n"
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
        "references:\n  - {id: r1, value: 41.4, source: 'Table 1', verified: true}\n"
        "claims:\n"
        "  - {id: c1, kind: paper, statement: 'b beats a', lhs: b.acc, op: '>', rhs: a.acc, paper: r1}\n"
        "  - {id: c2, kind: paper, statement: 'paper only', lhs: b.acc, op: '>', rhs: 0.5, scales: [paper]}\n")
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
    p.write_text("claims:\n  - {id: c1, kind: paper, statement: s, lhs: b.nope, op: '>', rhs: a.acc}\n")
    with pytest.raises(KeyError, match="metric 'nope' not in arm 'b'"):
        evaluate(load_paper(p), metrics, "mini")
