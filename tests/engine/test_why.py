"""paperzoo.why: a claim traced to its aggregated sides, per-seed run files and their provenance."""
import json

import pytest

from paperzoo import why


def _write(p, obj):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj))


def test_explain_lists_every_seed_with_its_run_file_and_commit(tmp_path):
    base = tmp_path / "results" / "s" / "mini"
    for arm, vals in (("a", [0.3, 0.4]), ("b", [0.1, 0.2])):
        for seed, v in enumerate(vals):
            _write(base / "runs" / arm / f"seed{seed}" / "metrics.json",
                   {"arm": arm, "seed": seed, "metrics": {"AP": v},
                    "meta": {"git_commit": "c0ffee" * 6 + "abcd", "git_dirty": seed == 1, "params_sha256": "f" * 64,
                             "cpu_model": "X", "wall_s": 1.5}})
    _write(base / "metrics.json", {"study": "s", "scale": "mini", "arms": {}})
    side = lambda arm, vals: {"ref": f"{arm}.AP", "mean": sum(vals) / 2, "std": 0.07, "n": 2,  # noqa: E731
                              "by_seed": {"0": vals[0], "1": vals[1]}}
    _write(base / "claims.json", {"claims": [{"id": "a_beats_b", "kind": "paper", "statement": "a > b", "test": "paired",
                                              "verdict": "reproduced",
                                              "ours": {"lhs": side("a", [0.3, 0.4]), "rhs": side("b", [0.1, 0.2]),
                                                       "diff": 0.2, "half_width_95": 0.0, "tol": 0.0}}]})
    text = why.explain(tmp_path, "s", "a_beats_b")
    assert "a.AP = 0.35" in text and "b.AP = 0.15" in text and "-> reproduced" in text
    assert text.count("commit c0ffee") == 4 and text.count("(modified tree)") == 2
    assert str(base / "runs" / "a" / "seed1" / "metrics.json") in text
    with pytest.raises(SystemExit, match="no claim 'nope'; claims: a_beats_b"):
        why.explain(tmp_path, "s", "nope")
    with pytest.raises(SystemExit, match="no claims"):
        why.explain(tmp_path, "other", "x")


def test_the_reports_trace_command_runs_as_written(tmp_path, capsys, monkeypatch):
    """Every claim row of the HTML report carries `paperzoo why <study> <id> [--scale]`;
    that exact command line (at a non-default scale too) explains the claim."""
    from paperzoo.engine.report import to_html, why_command

    base = tmp_path / "results" / "s" / "tiny"
    for arm, v in (("a", 0.5), ("b", 0.3)):
        _write(base / "runs" / arm / "seed0" / "metrics.json", {"arm": arm, "seed": 0, "metrics": {"AP": v}, "meta": {}})
    side = lambda arm, v: {"ref": f"{arm}.AP", "mean": v, "std": 0.0, "n": 1, "by_seed": {"0": v}}  # noqa: E731
    _write(base / "claims.json", {"study": "s", "scale": "tiny", "claims": [
        {"id": "a_high", "kind": "paper", "statement": "a beats b", "comparison": "a.AP > b.AP", "test": "paired",
         "verdict": "inconclusive", "paper": None,
         "ours": {"lhs": side("a", 0.5), "rhs": side("b", 0.3), "diff": 0.2, "half_width_95": 0.0, "tol": 0.0}}]})
    cmd = why_command("s", "a_high", "tiny")
    assert f"trace: <code>{cmd}</code>" in to_html([base / "claims.json"], [], tmp_path / "out")
    argv = cmd.split()
    assert argv[:2] == ["paperzoo", "why"]
    monkeypatch.chdir(tmp_path)
    from paperzoo import cli
    assert cli.main(argv[1:]) == 0
    out = capsys.readouterr().out
    assert "a_high" in out and str(base / "runs" / "a" / "seed0" / "metrics.json").split(str(tmp_path) + "/")[-1] in out
