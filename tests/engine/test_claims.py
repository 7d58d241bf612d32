"""The verdict rule of paperzoo.engine.claims on hand-made metrics."""
import math

import pytest

from paperzoo.engine.claims import Side, evaluate, half_width, load_paper, verdict


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


def test_evaluate_and_paper_yaml_errors(tmp_path):
    p = tmp_path / "paper.yaml"
    p.write_text(
        "study: demo\ntitle: Demo\narxiv: '0000.00000'\n"
        "references:\n  - {id: r1, value: 41.4, source: 'Table 1', verified: true}\n"
        "claims:\n"
        "  - {id: c1, statement: 'b beats a', lhs: b.acc, op: '>', rhs: a.acc, paper: r1}\n"
        "  - {id: c2, statement: 'paper only', lhs: b.acc, op: '>', rhs: 0.5, scales: [paper]}\n")
    metrics = {"arms": {"a": {"acc": {"mean": 0.5, "std": 0.01, "n": 3}},
                        "b": {"acc": {"mean": 0.7, "std": 0.01, "n": 3}}}}
    out = evaluate(load_paper(p), metrics, "mini")
    assert [c["id"] for c in out["claims"]] == ["c1"]
    c1 = out["claims"][0]
    assert c1["verdict"] == "reproduced"
    assert c1["ours"]["lhs"] == {"ref": "b.acc", "mean": 0.7, "std": 0.01, "n": 3}
    assert c1["paper"] == {"value": 41.4, "source": "Table 1", "verified": True}

    p.write_text("claims:\n  - {id: c1, statement: s, lhs: b.acc, op: '>=', rhs: a.acc}\n")
    with pytest.raises(ValueError, match="op '>='"):
        load_paper(p)
    p.write_text("claims:\n  - {id: c1, statement: s, lhs: b.acc, op: '>', rhs: a.acc, tol: 1}\n")
    with pytest.raises(ValueError, match="unknown key"):
        load_paper(p)
    p.write_text("claims:\n  - {id: c1, statement: s, lhs: b.nope, op: '>', rhs: a.acc}\n")
    with pytest.raises(KeyError, match="metric 'nope' not in arm 'b'"):
        evaluate(load_paper(p), metrics, "mini")
