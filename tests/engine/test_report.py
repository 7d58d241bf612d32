"""Report building and the README's generated section."""
import pytest

from paperzoo.engine.io import write_json
from paperzoo.engine.report import END, START, markdown, to_csv, to_html, update_readme


@pytest.fixture
def claims_file(tmp_path):
    f = tmp_path / "results/demo/mini/claims.json"
    side = {"ref": "b.acc", "mean": 0.7, "std": 0.01234, "n": 3}
    numbers = {"diff": 0.2, "se": 0.01, "half_width_95": 0.04302, "tol": 0.0}
    ref = {"id": "r1", "value": 41.4, "short": "arXiv 0000.00000, Table 1", "source": "long text", "verified": False}
    write_json(f, {"study": "demo", "scale": "mini", "title": "Demo", "arxiv": "0000.00000", "note": "study note",
                   "references": [{**ref, "note": "ref note"}], "claims": [
        {"id": "c1", "kind": "paper", "statement": "b | beats a", "comparison": "b.acc > a.acc", "test": "paired",
         "verdict": "reproduced", "note": "a caveat",
         "ours": {"lhs": side, "rhs": {**side, "ref": "a.acc", "mean": 0.5}, **numbers}, "paper": ref},
        {"id": "c2", "kind": "paper", "statement": "b beats 0.9", "comparison": "b.acc > 0.9", "test": "one-sample",
         "verdict": "contradicted", "note": None,
         "ours": {"lhs": side, "rhs": {"ref": None, "mean": 0.9, "std": 0.0, "n": None}, **numbers, "diff": -0.2},
         "paper": None},
        {"id": "c3", "kind": "paper", "statement": "paper scale only", "comparison": "b.acc ~= 41.4", "test": None,
         "verdict": "not run", "note": None, "ours": None, "paper": ref, "scales": ["paper"]},
        {"id": "c4", "kind": "check", "statement": "a count", "comparison": "a.n == 80", "test": "exact",
         "verdict": "reproduced", "note": None,
         "ours": {"lhs": {"ref": "a.n", "mean": 80, "std": 0, "n": 1}, "rhs": {"ref": None, "mean": 80, "std": 0,
                  "n": None}, "diff": 0.0, "se": 0.0, "half_width_95": 0.0, "tol": 0.0}, "paper": None}]})
    return f


def test_markdown_leads_with_paper_claims(claims_file):
    from paperzoo import STUDIES

    md = markdown([claims_file], STUDIES)
    # the headline counts paper claims only; the check is reported apart, collapsed
    assert ("**Paper claims (Holm-adjusted): 1 of 2 reproduced, 0 negligible, 1 contradicted, 0 inconclusive** "
            "(1 more only at other scales)") in md
    assert "checks: 1 of 1 reproduced" in md
    assert md.index("b \\| beats a") < md.index("<details><summary>Self-checks") < md.index("a count")
    assert "0.7 ± 0.012 (n=3) vs 0.5 ± 0.012 (n=3)" in md       # three significant digits, spread two
    assert "+0.2 ± 0.043" in md and "| paired |" in md and "*a caveat*" in md and "α = 0.025" in md
    assert "41.4, arXiv 0000.00000, Table 1 (unverified)" in md and "long text" in md.split("References")[1]
    assert "not run at this scale (claimed at: paper)" in md
    assert "| `demo` | 2 | 1 | 0 | 1 | 0 | 0 | 0 | 0/0 | 1/1 | — | — |" in md   # overview row (no provenance here)
    assert "| `ufo` | not built |" in md and "| `lae` | not built |" in md   # all ten papers listed


def test_csv_and_html(claims_file, tmp_path):
    header = to_csv([claims_file]).splitlines()[0]
    assert header == ("study,scale,id,kind,statement,comparison,test,lhs,rhs,diff,half_width_95,tol,sesoi,p,paper,"
                      "unadjusted,holm,verdict,gate,loo_kept,fragile,note")
    fig = tmp_path / "results/demo/mini/figures/fig1_demo.png"
    fig.parent.mkdir(parents=True)
    fig.write_bytes(b"png")
    from paperzoo import STUDIES

    html = to_html([claims_file], [fig], tmp_path / "results/report/mini", STUDIES)
    assert "<a href='../../demo/mini/figures/fig1_demo.png'><img src='../../demo/mini/figures/fig1_demo.png'" in html
    assert "class='contradicted'" in html and "class='notrun'" in html and "study note" in html
    assert html.index("<h2>Overview</h2>") < html.index("<h2 id='demo'>")
    assert "<td>apis</td><td colspan='11'>not built" in html


def test_overview_shows_the_runs_wall_time_and_commit(claims_file):
    from paperzoo.engine.io import read_json

    doc = read_json(claims_file)
    doc["provenance"] = {"runs": 12, "run_wall_s": 600.0, "git_commits": ["a" * 40], "git_dirty": False}
    write_json(claims_file, doc)
    assert "| 1/1 | 12 runs, 10 min | aaaaaaa |" in markdown([claims_file])
    doc["provenance"] |= {"git_commits": ["a" * 40, "b" * 40, "c" * 40], "git_dirty": True}
    write_json(claims_file, doc)
    assert "| 3 commits (modified tree) |" in markdown([claims_file])
    assert "<td>3 commits (modified tree)</td>" in to_html([claims_file], [], claims_file.parent)


def test_update_readme_replaces_only_the_marked_section(tmp_path):
    readme, table = tmp_path / "README.md", tmp_path / "claims.md"
    readme.write_text(f"# x\nbefore\n{START}\nold\n{END}\nafter\n")
    table.write_text("| new |\n")
    assert update_readme(readme, table)
    text = readme.read_text()
    assert "old" not in text and "| new |" in text and text.startswith("# x\nbefore\n") and text.endswith("after\n")
    assert not update_readme(readme, table)
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        update_readme(readme, table)


def test_update_readme_fills_the_cost_section_when_written(tmp_path):
    from paperzoo.engine.report import COST_END, COST_START

    readme, table, cost = tmp_path / "README.md", tmp_path / "claims.md", tmp_path / "cost.md"
    readme.write_text(f"{START}\n{END}\n## Cost\n{COST_START}\nold cost\n{COST_END}\nend\n")
    table.write_text("| claims |\n")
    assert update_readme(readme, table, cost)                      # no cost.md yet: cost section kept
    assert "old cost" in readme.read_text()
    cost.write_text("| study | jobs |\n")
    assert update_readme(readme, table, cost)
    text = readme.read_text()
    assert "old cost" not in text and "| study | jobs |" in text and text.endswith("end\n")


def test_verdict_diff_lists_changed_and_moved_claims(claims_file, tmp_path):
    import copy

    from paperzoo.engine.io import read_json
    from paperzoo.engine.report import verdict_diff

    here = tmp_path / "results"
    doc = read_json(claims_file)
    other_doc = copy.deepcopy(doc)
    c1, c2 = other_doc["claims"][0], other_doc["claims"][1]
    c1["verdict"], c1["ours"]["diff"] = "inconclusive", 0.02        # flipped: moved (0.02 - 0.2) / 0.04302
    c2["ours"]["diff"] = -0.3                                         # same verdict, moved 2.3 half-widths
    other = tmp_path / "other"
    write_json(other / "demo/mini/claims.json", other_doc)
    write_json(other / "extra/mini/claims.json", {**doc, "study": "extra"})
    text, changed = verdict_diff(here, other, "mini")
    assert changed == 1
    # c1, c2 and c4 ran in both (c3 is paper-scale only); c1 changed; c1 and c2 moved
    assert "| `demo` | 3 | 2 | 1 | 2 |" in text
    assert "| `extra` | only in other | | | |" in text
    assert "| `demo` | paper | `b.acc > a.acc` | ✅ reproduced | ➖ inconclusive | 0.2 → 0.02 | -4.2 |" in text
    assert "`b.acc > 0.9` | ❌ contradicted | ❌ contradicted | -0.2 → -0.3 | -2.3 |" in text
    assert "a.n == 80" not in text                                    # unchanged and unmoved: not listed
    # a claim without spread (half-width 0) counts as moved only beyond float round-off
    c4 = other_doc["claims"][3]
    c4["ours"]["diff"] = 1e-15
    write_json(other / "demo/mini/claims.json", other_doc)
    assert "a.n == 80" not in verdict_diff(here, other, "mini")[0]
    c4["ours"]["diff"] = 0.5
    write_json(other / "demo/mini/claims.json", other_doc)
    assert "`a.n == 80` | ✅ reproduced | ✅ reproduced | 0 → 0.5 | — |" in verdict_diff(here, other, "mini")[0]
    text_same, changed_same = verdict_diff(here, here, "mini")
    assert changed_same == 0 and "| `demo` | 3 | 3 | 0 | 0 |" in text_same and "Claims whose" not in text_same


def test_v3_holm_regime_fragility_and_coverage_are_shown(claims_file):
    from paperzoo.engine.io import read_json

    doc = read_json(claims_file)
    c1, c2 = doc["claims"][0], doc["claims"][1]
    c1 |= {"unadjusted": "reproduced", "holm": "inconclusive", "verdict": "inconclusive", "p": 0.02}
    c2 |= {"unadjusted": "contradicted", "holm": "contradicted", "fragile": True, "loo_kept": 2 / 3}
    doc["abstract"] = [{"id": "a1", "text": "b is better", "claims": ["c1", "c2"]},
                       {"id": "a2", "text": "it scales", "untestable": "not testable at this scale: one size"}]
    write_json(claims_file, doc)
    md = markdown([claims_file])
    assert "0 of 2 reproduced, 0 negligible, 1 contradicted, 1 inconclusive** (1 of the decided ⚠ fragile)" in md
    assert "➖ inconclusive (before Holm: ✅ reproduced)" in md and "❌ contradicted · ⚠ fragile | 67% |" in md
    assert "| b is better | `c1` (paper): ➖ inconclusive<br>`c2` (paper): ❌ contradicted |" in md
    assert "| it scales | *not testable at this scale: one size* |" in md
    # a failed gate: the paper claims are out of regime, the gate's numbers in the headline
    c2 |= {"verdict": "out of regime", "fragile": False}
    c1 |= {"verdict": "out of regime"}
    doc["claims"][3] |= {"gate": True, "verdict": "contradicted"}
    doc["regime"] = {"in_regime": False, "gates": [{"id": "c4", "comparison": "a.n == 80", "verdict": "contradicted",
                                                    "diff": -1.0, "half_width_95": 0.0}]}
    write_json(claims_file, doc)
    md = markdown([claims_file])
    assert "**Paper claims: 2 of 2 out of regime** — gate `c4` (a.n == 80) contradicted, d = -1" in md
    assert "🚫 out of regime (per claim: ❌ contradicted)" in md
    assert "| `demo` | 2 | 0 | 0 | 0 | 0 | 2 | 0 |" in md
    assert "⊘ out of regime" in to_html([claims_file], [], claims_file.parent)
