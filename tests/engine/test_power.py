"""engine.power: seeds that would decide undecided paper claims, on hand-worked numbers."""
import json
import math

from paperzoo.engine import power


def _claim(cid="c", verdict="inconclusive", kind="paper", diff=0.02, se=0.01, n=3, sesoi=0.05, tol=0.0,
           test="paired", comparison="b.m > a.m"):
    side = {"ref": "x", "mean": 0.5, "std": 0.1, "n": n}
    return {"id": cid, "kind": kind, "verdict": verdict, "holm": verdict, "test": test, "comparison": comparison,
            "p": 0.1, "ours": {"lhs": side, "rhs": side, "diff": diff, "se": se, "tol": tol, "sesoi": sesoi,
                               "half_width_95": 4.303 * se}}


def test_paired_claim_seed_counts_match_hand_computation():
    # sd of the differences = 0.01·√3. n = 4: se = 0.00866, t(0.975, 3) = 3.182 → h = 0.0276 > d = 0.02,
    # but d + h = 0.0476 < sesoi 0.05 → decided (negligible) at n = 4; n = 3: h = 0.043, 0.063 > 0.05.
    r = power.claim_power(_claim(), m=1)
    assert r["alpha"]["observed"] == 4
    # detect sesoi: (t(0.975) + t(0.80)) · se ≤ 0.05: n = 3: (4.303 + 1.061)·0.01 = 0.054; n = 4: 0.036
    assert r["alpha"]["detect_sesoi"] == 4
    # negligible if null: (t(0.975) + t(0.90)) · se ≤ 0.05: n = 3: 0.062; n = 4: (3.182 + 1.638)·0.00866 = 0.042
    assert r["alpha"]["negligible_if_null"] == 4
    assert r["holm_strictest"] == r["alpha"]          # m = 1: Holm's strictest step is α itself
    strict = power.claim_power(_claim(), m=4)["holm_strictest"]
    assert all(strict[k] >= r["alpha"][k] for k in strict)


def test_no_sesoi_and_no_spread():
    r = power.claim_power(_claim(sesoi=None), m=1)
    assert r["alpha"]["detect_sesoi"] is None and r["alpha"]["negligible_if_null"] is None
    assert r["alpha"]["observed"] is not None
    r = power.claim_power(_claim(se=0.0, diff=0.0), m=1)
    assert r["no_spread"] and r["alpha"]["observed"] is None


def test_welch_spread_uses_both_sides():
    c = _claim(test="welch")
    f = power.se_at(c)
    se, df = f(3)
    assert se == math.sqrt(2 * 0.1**2 / 3) and df == 4.0   # equal sds: Welch df = 2(n − 1)


def test_study_lists_only_undecided_paper_claims_and_prices_them(tmp_path):
    doc = {"study": "toy", "scale": "mini", "regime": {"in_regime": True}, "claims": [
        _claim("u"), _claim("d", verdict="reproduced"), _claim("pred", kind="prediction"),
        {**_claim("late"), "verdict": "not run", "holm": "not run"}]}
    t = power.study_power(doc, per_seed_min=2.0)
    assert t["paper_claims"] == 2 and [r["id"] for r in t["claims"]] == ["u"]
    res = tmp_path / "results"
    (res / "toy" / "mini").mkdir(parents=True)
    (res / "toy" / "mini" / "claims.json").write_text(json.dumps(doc))
    ledger = tmp_path / "cost.csv"
    ledger.write_text("study,rule,job,mtime,s,cpu_time,max_rss\n"
                      "toy,train,a_seed0,1,60,1,1\ntoy,train,b_seed0,1,60,1,1\ntoy,train,a_seed1,1,120,1,1\n")
    power.main(["--results", str(res), "--ledger", str(ledger), "--out", str(tmp_path / "out")])
    md = (tmp_path / "out" / "power.md").read_text()
    # one seed costs (2 + 2) / 2 = 2 job-min; detect at n = 4 (m = 2, strictest α/2: n = 5) → 2 more seeds = 4 job-min
    assert "## toy: 1 of 2 paper claims undecided; one seed of the study costs 2.0 job-min" in md
    row = next(line for line in md.splitlines() if line.startswith("| `u`"))
    strict = power.claim_power(_claim(), m=2)["holm_strictest"]["detect_sesoi"]
    assert f"| 4 / {strict} | {(strict - 3) * 2.0:.0f} |" in row
    assert json.loads((tmp_path / "out" / "power.json").read_text())["tables"][0]["undecided"] == 1


def test_compound_claim_lists_its_undecided_parts():
    parts = [{**_claim("p1", kind="prediction"), "unadjusted": "reproduced"},
             {**_claim("p2", kind="prediction"), "unadjusted": "inconclusive"}]
    comp = {**_claim("all"), "all_of": ["p1", "p2"], "test": "all of 2"}
    t = power.study_power({"study": "toy", "scale": "mini", "claims": [*parts, comp]}, per_seed_min=None)
    assert [r["id"] for r in t["claims"]] == ["all ← p2 (inconclusive)"] and t["paper_claims"] == 1


def test_agreement_claim_is_decided_by_its_tost():
    # d = -0.1 against ±0.2 with sd 0.01·√3: inside once h < 0.1 (n = 3: h = 0.043 already), so n = 3;
    # a one-sided reading of d - tol would have called it decided for the wrong reason
    c = _claim(diff=-0.1, sesoi=None, tol=0.2, comparison="b.m ~= a.m")
    assert power.claim_power(c, m=1)["alpha"]["observed"] == 3
    # d = -0.19: inside needs h < 0.01: se = 0.01·√3/√n, t·se < 0.01 from n = 15 on
    c = _claim(diff=-0.19, sesoi=None, tol=0.2, comparison="b.m ~= a.m")
    n = power.claim_power(c, m=1)["alpha"]["observed"]
    from scipy import stats
    sd = 0.01 * 3 ** 0.5
    assert n == next(k for k in range(3, 200) if stats.t.ppf(0.975, k - 1) * sd / k ** 0.5 < 0.01)
