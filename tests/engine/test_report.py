"""Report building and the README's generated section."""
import pytest

from paperzoo.engine.io import write_json
from paperzoo.engine.report import END, START, markdown, to_csv, to_html, update_readme


@pytest.fixture
def claims_file(tmp_path):
    f = tmp_path / "results/demo/mini/claims.json"
    side = {"ref": "b.acc", "mean": 0.7, "std": 0.01, "n": 3}
    write_json(f, {"study": "demo", "scale": "mini", "title": "Demo", "arxiv": "0000.00000", "claims": [
        {"id": "c1", "statement": "b | beats a", "comparison": "b.acc > a.acc", "verdict": "reproduced",
         "ours": {"lhs": side, "rhs": {**side, "ref": "a.acc", "mean": 0.5}},
         "paper": {"value": 41.4, "source": "Table 1", "verified": False}},
        {"id": "c2", "statement": "b beats 0.9", "comparison": "b.acc > 0.9", "verdict": "contradicted",
         "ours": {"lhs": side, "rhs": {"ref": None, "mean": 0.9, "std": 0.0, "n": None}}, "paper": None}]})
    return f


def test_markdown_csv_html(claims_file, tmp_path):
    md = markdown([claims_file])
    assert "1 reproduced · 0 inconclusive · 1 contradicted" in md
    assert "b \\| beats a" in md and "0.7 ± 0.01 (n=3)" in md and "41.4 [Table 1] (not verified)" in md
    assert to_csv([claims_file]).splitlines()[0] == "study,scale,id,statement,comparison,lhs,rhs,paper,verdict"
    fig = tmp_path / "results/demo/mini/figures/fig1_demo.png"
    fig.parent.mkdir(parents=True)
    fig.write_bytes(b"png")
    html = to_html([claims_file], [fig], tmp_path / "results/report/mini")
    assert "../../demo/mini/figures/fig1_demo.png" in html and "class='contradicted'" in html


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
