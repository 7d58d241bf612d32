"""engine.subsample: claims recomputed on subsets of a study's seeds."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from paperzoo.engine import subsample
from paperzoo.engine.claims import load_paper


def _metric(by_seed: dict) -> dict:
    vals = list(by_seed.values())
    m = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return {"mean": m, "std": sd, "n": len(vals), "by_seed": {str(k): v for k, v in by_seed.items()}}


# four seeds; the gain of "method" over "base" is +1 on seeds 0-2 and reversed on seed 3
METRICS = {
    "study": "toy", "scale": "mini",
    "arms": {
        "base": {"acc": _metric({0: 10.0, 1: 11.0, 2: 12.0, 3: 13.0})},
        "method": {"acc": _metric({0: 11.0, 1: 12.1, 2: 12.9, 3: 11.0}), "params": _metric({0: 5.0})},
        "upper": {"acc": _metric({0: 20.0, 1: 21.0, 2: 22.0})},     # run on 3 seeds only
    },
}


@pytest.fixture
def paper(tmp_path):
    p = tmp_path / "paper.yaml"
    p.write_text(yaml.safe_dump({
        "study": "toy", "paired": True, "sesoi_rule": "a hundredth of a point",
        "abstract": [{"id": "a", "text": "method is better", "claims": ["gain", "later"]}],
        "claims": [
            {"id": "gain", "kind": "paper", "statement": "method beats base", "lhs": "method.acc", "op": ">",
             "rhs": "base.acc", "min_seeds": 4, "sesoi": 0.01},
            {"id": "bound", "kind": "check", "statement": "upper beats method", "lhs": "upper.acc", "op": ">",
             "rhs": "method.acc", "paired": False},
            {"id": "later", "kind": "paper", "statement": "paper scale only", "lhs": "method.acc", "op": ">",
             "rhs": 0.0, "scales": ["paper"], "sesoi": 0.01},
        ]}))
    return load_paper(p)


def test_seed_ids_are_those_of_the_arms_with_most_seeds():
    assert subsample.seed_ids(METRICS) == (["0", "1", "2", "3"], 4)


def test_restrict_recomputes_full_arms_and_keeps_the_others():
    r = subsample.restrict(METRICS, {"0", "2", "3"}, 4)
    acc = r["arms"]["base"]["acc"]
    assert acc["by_seed"] == {"0": 10.0, "2": 12.0, "3": 13.0}
    assert acc["n"] == 3 and acc["mean"] == pytest.approx(35 / 3)
    assert acc["std"] == pytest.approx(math.sqrt(((10 - 35 / 3) ** 2 + (12 - 35 / 3) ** 2 + (13 - 35 / 3) ** 2) / 2))
    assert r["arms"]["upper"] == METRICS["arms"]["upper"]              # 3-seed arm: kept whole
    assert r["arms"]["method"]["params"]["by_seed"] == {"0": 5.0}      # within the subset: kept
    assert subsample.restrict(METRICS, {"1"}, 4)["arms"]["method"]["params"] == METRICS["arms"]["method"]["params"]
    assert METRICS["arms"]["base"]["acc"]["n"] == 4                    # the input is not modified


def test_subsets_all_or_a_fixed_sample():
    assert subsample.subsets(["0", "1", "2", "3"], 3, 10) == [("0", "1", "2"), ("0", "1", "3"), ("0", "2", "3"),
                                                              ("1", "2", "3")]
    ids = [str(i) for i in range(10)]
    a, b = subsample.subsets(ids, 4, 20), subsample.subsets(ids, 4, 20)
    assert a == b and len(set(a)) == 20 and all(len(set(s)) == 4 for s in a)


def test_min_seeds_capped_at_k(paper):
    capped = subsample.with_min_seeds(paper, 3)
    assert [c["min_seeds"] for c in capped["claims"]] == [3, 3, 3]
    assert paper["claims"][0]["min_seeds"] == 4


def test_study_table_shares(paper):
    t = subsample.study_table(paper, METRICS, "mini", max_subsets=100)
    assert t["n_seeds"] == 4 and sorted(t["per_k"]) == [3, 4]
    gain = t["claims"]["gain"]
    # all four seeds: mean gain 0.25 with seed 3 reversed -> inconclusive
    assert gain["verdict"] == "inconclusive" and gain["shares"][4]["inconclusive"] == 1.0
    # of the four 3-seed subsets only {0, 1, 2} (gains 1.0, 1.1, 0.9) excludes zero
    assert gain["shares"][3] == {"reproduced": 0.25, "negligible": 0.0, "inconclusive": 0.75, "contradicted": 0.0,
                                 "out of regime": 0.0}
    assert t["claims"]["bound"]["shares"][3]["reproduced"] == 1.0
    assert "later" not in t["claims"]                                  # not run at this scale
    assert t["per_k"][3]["subsets"] == 4 and t["per_k"][3]["of"] == 4
    assert t["per_k"][3]["expected_decided"] == pytest.approx(1.25)
    assert t["per_k"][3]["expected_same_as_full"] == pytest.approx(1.75)


def test_seed_cost_and_cli(tmp_path, paper):
    ledger = tmp_path / "cost_jobs.csv"
    ledger.write_text("study,rule,job,mtime,s,cpu_time,max_rss\n"
                      "toy,train,method_seed3,1,120,1,1\ntoy,train,base_seed3,1,60,1,1\n"
                      "toy,train,base_seed0,1,30,1,1\ntoy,pretrain,log,1,600,1,1\nother,train,x_seed3,1,60,1,1\n")
    assert subsample.seed_cost(ledger, "toy") == {3: 3.0, 0: 0.5}
    assert subsample.seed_cost(tmp_path / "none.csv", "toy") == {}
    res, studies = tmp_path / "results", tmp_path / "studies"
    (res / "toy" / "mini").mkdir(parents=True)
    (res / "toy" / "mini" / "metrics.json").write_text(json.dumps(METRICS))
    (studies / "toy").mkdir(parents=True)
    (studies / "toy" / "paper.yaml").write_text((tmp_path / "paper.yaml").read_text())
    out = tmp_path / "out"
    subsample.main(["--scale", "mini", "--results", str(res), "--studies-dir", str(studies), "--ledger", str(ledger),
                    "--out", str(out)])
    text = (out / "seeds.md").read_text()
    assert "## toy (4 seeds)" in text and "| gain | paper | inconclusive | R 0.25 / I 0.75 | I 1.00 |" in text
    assert "| *saves (job-min)* | | | 3.0 | 0.0 |" in text
    assert json.loads((out / "seeds.json").read_text())["tables"][0]["per_k"]["3"]["subsets"] == 4


def test_cli_names_a_missing_paper(tmp_path):
    res = tmp_path / "results"
    (res / "toy" / "mini").mkdir(parents=True)
    (res / "toy" / "mini" / "metrics.json").write_text(json.dumps(METRICS))
    with pytest.raises(SystemExit, match="paper.yaml: missing"):
        subsample.main(["--scale", "mini", "--results", str(res), "--studies-dir", str(tmp_path / "studies"),
                        "--out", str(tmp_path / "out")])
