"""engine.cost: benchmark files summed per study and rule, NaN-safe, written atomically."""
import math

import pytest

from paperzoo.engine import cost

HEAD = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(root, study, rule, job, s, cpu, rss, scale="mini"):
    p = root / study / scale / rule / f"{job}.benchmark.tsv"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(HEAD + f"{s}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    return p


def test_summary_per_study_and_rule(tmp_path):
    _bench(tmp_path, "a", "train", "x_seed0", 10.0, 9.0, 100.0)
    _bench(tmp_path, "a", "train", "x_seed1", 30.0, 28.0, 300.0)
    _bench(tmp_path, "a", "figures", "log", 2.0, "-", 50.0)       # Snakemake writes '-' when unmeasured
    _bench(tmp_path, "b", "teacher", "log", 5.0, 4.0, 80.0)
    _bench(tmp_path, "b", "teacher", "log", 99.0, 99.0, 99.0, scale="tiny")   # other scale: ignored
    studies, rules = cost.summarise(cost.collect(tmp_path, "mini"))
    a = next(s for s in studies if s["study"] == "a")
    assert (a["jobs"], a["wall_s"], a["cpu_s"], a["max_rss_mb"]) == (3, 42.0, 37.0, 300.0)
    assert a["longest_job"] == "train/x_seed1" and a["longest_s"] == 30.0
    tr = next(r for r in rules if (r["study"], r["rule"]) == ("a", "train"))
    assert tr["mean_job_s"] == 20.0
    fig = next(r for r in rules if r["rule"] == "figures")
    assert fig["cpu_s"] == 0.0 and math.isclose(fig["wall_s"], 2.0)
    out = cost.write(studies, rules, tmp_path / "out", "mini")
    md = out[0].read_text()
    assert "| `a` | 3 | 0.7 | 0.6 |" in md and "| 0.29 | train/x_seed1 (30) |" in md and "| **all** | 4 |" in md
    assert a["span_s"] >= 30.0 and 0 < a["busy"] <= 42.0 / 30.0
    assert out[1].read_text().splitlines()[0] == "study,rule,jobs,wall_s,cpu_s,max_rss_mb"


def test_no_benchmarks_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no benchmark files"):
        cost.main(["--scale", "mini", "--logs", str(tmp_path)])
    (tmp_path / "a" / "mini" / "r").mkdir(parents=True)
    (tmp_path / "a" / "mini" / "r" / "j.benchmark.tsv").write_text("")
    with pytest.raises(ValueError, match="empty benchmark file"):
        cost.collect(tmp_path, "mini")
